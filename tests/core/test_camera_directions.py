"""Camera directions: where linked tracklets of two cameras differ, taken out of the embedding."""

import copy

import numpy as np
import torch

from idstudio.core.colour import DIM
from idstudio.core.links import LINKS_PER_DIRECTION, camera_directions
from idstudio.core.model import EmbeddingModel, ModelSpec


def _two_cameras(rng, n_people, shift_learned, shift_colour, widths):
    """Each person's tracklet (3 crops) in camera a, and in camera b moved along the given
    directions by an amount that varies per person (light and angle change per crossing)."""
    people = rng.normal(size=(n_people, sum(widths)))
    rows_a, rows_b, feats = [], [], []
    for p in range(n_people):
        move = rng.normal(1.0, 0.5) * shift_learned + rng.normal(1.0, 0.5) * shift_colour
        for side, offset in ((rows_a, 0.0), (rows_b, 1.0)):
            side.append(np.arange(len(feats), len(feats) + 3))
            feats.extend(people[p] + offset * move + 0.01 * rng.normal(size=(3, sum(widths))))
    return np.array(feats), list(zip(rows_a, rows_b))


def test_each_part_gets_the_direction_its_cameras_move_a_person_along():
    rng = np.random.default_rng(0)
    widths = (16, 24)
    learned, colour = np.zeros(40), np.zeros(40)
    learned[:16] = rng.normal(size=16)
    colour[16:] = rng.normal(size=24)
    learned *= 3 / np.linalg.norm(learned)
    colour *= 6 / np.linalg.norm(colour)
    emb, pairs = _two_cameras(rng, 40, learned, colour, widths)
    found = camera_directions(emb, pairs, widths, k=1)
    assert found.shape == (2, 40)
    assert np.allclose(found @ found.T, np.eye(2), atol=1e-5)  # orthonormal, one per part
    assert abs(found[0] @ learned) / np.linalg.norm(learned) > 0.95 and not found[0, 16:].any()
    assert abs(found[1] @ colour) / np.linalg.norm(colour) > 0.95 and not found[1, :16].any()


def test_too_few_links_give_fewer_directions_or_none():
    rng = np.random.default_rng(1)
    emb, pairs = _two_cameras(rng, 12, rng.normal(size=8), np.zeros(8), (8,))
    assert camera_directions(emb, pairs[:LINKS_PER_DIRECTION - 1], (8,), k=4).shape == (0, 8)
    assert camera_directions(emb, pairs[:2 * LINKS_PER_DIRECTION], (8,), k=4).shape == (2, 8)


def test_the_model_takes_its_camera_directions_out_at_inference_only_and_keeps_them_in_the_checkpoint(reloaded):
    spec = ModelSpec(arch="resnet18", dim=DIM + 32, height=64, width=32, colour=3.0)
    model = EmbeddingModel(spec).eval()
    x = torch.rand(6, 3, 64, 32)
    directions = np.zeros((2, spec.dim), np.float32)
    directions[0, :32] = np.linalg.qr(np.random.default_rng(2).normal(size=(32, 1)))[0][:, 0]
    directions[1, 32:] = 1 / np.sqrt(DIM)
    with torch.no_grad():
        before = model(x)
        model.set_camera_directions(directions)
        after = model(x)
        learned_in_training = copy.deepcopy(model).train()(x)  # a copy: training mode moves BatchNorm's statistics
    d = torch.from_numpy(directions)
    assert float((before @ d.T).abs().max()) > 0.05
    assert float((after @ d.T).abs().max()) < 1e-5
    assert torch.allclose(after.norm(dim=1), torch.ones(6), atol=1e-5)
    assert learned_in_training.shape == (6, 32)  # the loss sees the learned part as before
    assert np.allclose(np.array(reloaded(model, x).spec.camera_directions), directions, atol=1e-6)
    # a checkpoint from before (no directions in its spec) loads with none
    old = {k: v for k, v in spec.to_dict().items() if k != "camera_directions"}
    assert EmbeddingModel(ModelSpec.from_dict(old)).directions.shape == (0, spec.dim)
