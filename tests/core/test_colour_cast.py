"""The cameras' colour casts, found from a site's cameras and taken out of the colour part."""

import numpy as np
import torch

from idstudio.core.colour import DIM, cast_directions, colour_descriptor, remove_cast
from idstudio.core.model import EmbeddingModel, ModelSpec


def test_the_cast_of_two_cameras_at_a_site_is_their_mean_difference():
    rng = np.random.default_rng(0)
    people = rng.random((50, DIM))
    cast = np.zeros(DIM)
    cast[:8] = 0.5
    descriptors = np.concatenate([people, people + cast, rng.random((20, DIM))])
    camera = np.r_[np.zeros(50), np.ones(50), np.full(20, 2)].astype(int)
    site = np.r_[np.zeros(100), np.ones(20)].astype(int)  # camera 2 alone at its site: no cast from it
    found = cast_directions(descriptors, camera, site)
    assert found.shape == (1, DIM)
    assert abs(float(found[0] @ cast) / np.linalg.norm(cast)) > 0.999
    assert cast_directions(descriptors[:50], camera[:50], site[:50]).shape == (0, DIM)


def test_three_cameras_give_two_directions_and_removing_them_leaves_none_of_either():
    rng = np.random.default_rng(1)
    people = rng.random((30, DIM))
    casts = rng.normal(size=(3, DIM))
    descriptors = np.concatenate([people + c for c in casts])
    camera = np.repeat(np.arange(3), 30)
    found = cast_directions(descriptors, camera, np.zeros(90, int))
    assert found.shape == (2, DIM)
    cleaned = remove_cast(torch.from_numpy(descriptors).float(), torch.from_numpy(found)).numpy()
    means = np.stack([cleaned[camera == c].mean(0) for c in range(3)])
    assert np.abs(means - means.mean(0)).max() < 1e-4


def test_the_model_takes_the_cast_out_of_its_colour_part_and_keeps_it_in_the_checkpoint(reloaded):
    spec = ModelSpec(arch="resnet18", dim=DIM + 32, height=64, width=32, colour=3.0)
    model = EmbeddingModel(spec).eval()
    x = torch.rand(6, 3, 64, 32)
    direction = colour_descriptor(x).mean(0)
    direction = (direction / direction.norm()).numpy()[None]
    with torch.no_grad():
        before = model(x)
        model.set_colour_cast(direction)
        after = model(x)
    assert float((before[:, 32:] @ torch.from_numpy(direction[0])).abs().min()) > 0.05
    assert float((after[:, 32:] @ torch.from_numpy(direction[0])).abs().max()) < 1e-5
    assert np.allclose(np.array(reloaded(model, x).spec.colour_cast), direction, atol=1e-6)
    # a checkpoint from before (no cast in its spec) loads with none
    old = {k: v for k, v in spec.to_dict().items() if k != "colour_cast"}
    assert ModelSpec.from_dict(old).colour_cast == ()
