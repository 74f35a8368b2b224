"""Model, checkpoints and crop decoding (tiny inputs: fast)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from idstudio.core.data import (CropPairs, CropStore, EpochBatches, PairDataset, background_donors, background_mix,
                                centre_mask, decode_crops, train_transform)
from idstudio.core.errors import UserError
from idstudio.core.model import ModelSpec, build_model, load_checkpoint, save_checkpoint

SPEC = ModelSpec("resnet18", dim=32, height=64, width=32)


def test_forward_is_l2_normalised_and_deterministic():
    m1, msg = build_model(SPEC, weights="none", seed=0)
    m2, _ = build_model(SPEC, weights="none", seed=0)
    m3, _ = build_model(SPEC, weights="none", seed=1)
    assert "random" in msg
    x = torch.rand(3, 3, 64, 32)
    m1.eval(); m2.eval(); m3.eval()
    with torch.no_grad():
        y1, y2, y3 = m1(x), m2(x), m3(x)
    assert y1.shape == (3, 32)
    assert torch.allclose(y1.norm(dim=1), torch.ones(3), atol=1e-5)
    assert torch.equal(y1, y2)
    assert not torch.allclose(y1, y3)
    assert m1.spec == SPEC


def test_auto_without_cache_is_random_and_never_downloads(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    _, msg = build_model(SPEC, weights="auto")
    assert "random initialisation" in msg and "nothing was downloaded" in msg
    with pytest.raises(UserError, match="not in the local torch cache"):
        build_model(SPEC, weights="imagenet")


def test_weights_file_and_cache_are_used(monkeypatch, tmp_path):
    import torchvision

    tv = torchvision.models.resnet18(weights=None)
    (tmp_path / "checkpoints").mkdir()
    f = tmp_path / "checkpoints" / "resnet18-f37072fd.pth"
    torch.save(tv.state_dict(), f)
    model, msg = build_model(SPEC, weights=f)
    assert "ImageNet weights" in msg and str(f) in msg
    assert torch.equal(model.backbone[0].weight, tv.conv1.weight)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    model, msg = build_model(SPEC, weights="auto")
    assert torch.equal(model.backbone[4][0].conv1.weight, tv.layer1[0].conv1.weight)
    # a resnet50 file for a resnet18 model
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), tmp_path / "r50.pth")
    with pytest.raises(UserError, match="not a torchvision resnet18"):
        build_model(SPEC, weights=tmp_path / "r50.pth")


def test_checkpoint_roundtrip_and_bad_files(tmp_path):
    model, _ = build_model(SPEC, weights="none", seed=3)
    model.eval()
    path = save_checkpoint(tmp_path / "c" / "last.pt", model, epoch=4, metrics={"mAP": 0.5})
    assert not list(path.parent.glob("*.tmp"))
    loaded, payload = load_checkpoint(path)
    assert payload["epoch"] == 4 and payload["metrics"]["mAP"] == 0.5
    x = torch.rand(2, 3, 64, 32)
    with torch.no_grad():
        assert torch.allclose(model(x), loaded(x), atol=1e-6)
    with pytest.raises(UserError, match="resnet18.*resnet34"):
        load_checkpoint(path, spec=ModelSpec("resnet34", dim=32))
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(UserError, match="corrupt"):
        load_checkpoint(bad)
    trunc = tmp_path / "trunc.pt"
    trunc.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(UserError, match="corrupt"):
        load_checkpoint(trunc)
    with pytest.raises(UserError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


def test_checkpoint_cannot_run_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pt"
    torch.save({"format": "idstudio-checkpoint-1", "x": Evil()}, path)
    with pytest.raises(UserError):
        load_checkpoint(path)


def _jpeg(color, h=40, w=20):
    img = np.zeros((h, w, 3), np.uint8)
    img[:] = color  # BGR
    return cv2.imencode(".jpg", img)[1].tobytes()


def test_decode_crops_rgb_and_resized():
    x = decode_crops([_jpeg((255, 0, 0)), _jpeg((0, 0, 255), 100, 30)], SPEC)
    assert x.shape == (2, 3, 64, 32) and x.dtype == torch.float32
    assert 0 <= x.min() and x.max() <= 1
    assert x[0, 2].mean() > 0.9 and x[0, 0].mean() < 0.1  # blue in BGR -> channel 2 in RGB
    assert x[1, 0].mean() > 0.9
    assert decode_crops([], SPEC).shape == (0, 3, 64, 32)


def test_pair_dataset_returns_stored_crops():
    images = torch.randint(0, 255, (4, 3, 64, 32), dtype=torch.uint8)
    store = CropStore(np.array([10, 11, 12, 13]), images)
    assert list(store.index_of(np.array([12, 10]))) == [2, 0]
    ds = PairDataset(store, np.array([0, 1]), np.array([2, 3]), np.array([1.0, 0.5]))
    a, b, w, i = ds[1]
    assert torch.equal(a, images[1]) and torch.equal(b, images[3]) and float(w) == 0.5 and i == 1


def test_one_loader_serves_every_epoch_with_its_workers_kept():
    """The trainer's loader: the pairs change each epoch, the worker process stays (warm cache)."""
    images = torch.randint(0, 255, (6, 3, 64, 32), dtype=torch.uint8)
    store = CropStore(np.arange(6) + 100, images)
    order = EpochBatches()
    loader = torch.utils.data.DataLoader(CropPairs(store), batch_sampler=order, num_workers=1,
                                         persistent_workers=True, multiprocessing_context="spawn")
    seen = []
    for a, b in (([0, 1], [2, 3]), ([4, 5, 0], [1, 2, 3])):  # two epochs, other pairs and sizes
        ds = PairDataset(store, np.array(a), np.array(b), np.linspace(0.5, 1.0, len(a)))
        order.batches = [ds.rows(np.arange(len(a)))]
        va, vb, w, idx = next(iter(loader))
        assert torch.equal(va, images[a]) and torch.equal(vb, images[b]) and idx.tolist() == list(range(len(a)))
        assert torch.allclose(w, torch.linspace(0.5, 1.0, len(a)))
        seen.append(loader._iterator)
    assert seen[0] is seen[1]  # the same iterator, hence the same worker processes


def test_crop_store_streams_from_the_crop_file_with_a_bounded_cache(tmp_path):
    import pickle

    from idstudio.core.data import decode_crops_uint8
    from idstudio.core.embed import RowFile
    from idstudio.core.store import Project

    project = Project.create(tmp_path / "p")
    jpegs = [_jpeg((10 * k, 255 - 10 * k, 60), 70 + k, 30) for k in range(12)]
    ids = project.add_frames_and_instances(None, [], [{"x": 0, "y": 0, "w": 1, "h": 1, "source": "gallery"}] * 12, jpegs)
    store = CropStore.load(project, ids, SPEC, cache_mb=4 * 3 * 64 * 32 / 2 ** 20)  # room for 4 crops
    truth = decode_crops_uint8(jpegs, SPEC)
    assert torch.equal(store.get([3, 0, 11]), truth[[3, 0, 11]])
    assert torch.equal(store.get(np.arange(12)), truth)
    assert len(store.source._cache) == 4  # bounded: the last four read
    # a DataLoader worker gets a copy without the connection or the cache, and reads on its own
    copy = pickle.loads(pickle.dumps(store))
    assert len(copy.source._cache) == 0 and torch.equal(copy.get([5]), truth[[5]])
    ds = PairDataset(store, np.array([0, 1, 2]), np.array([3, 4, 5]), np.array([1.0, 0.5, 0.2]))
    loader = torch.utils.data.DataLoader(ds, batch_sampler=[[0, 2], [1]])
    va, vb, w, idx = next(iter(loader))
    assert torch.equal(va, truth[[0, 2]]) and torch.equal(vb, truth[[3, 5]]) and idx.tolist() == [0, 2]
    with pytest.raises(UserError, match="missing"):
        CropStore.load(project, [ids[0], 999], SPEC).get([1])
    # the float16 row file: rows written and read back by ranges, readable as a .npy
    rows = RowFile(tmp_path / "e.npy", 10, 3)
    rows[0:4] = np.arange(12).reshape(4, 3)
    rows[np.array([9, 5, 6])] = np.ones((3, 3)) * [[9], [5], [6]]
    assert rows[np.array([6, 1])].tolist() == [[6, 6, 6], [3, 4, 5]]
    rows.close()
    assert np.load(tmp_path / "e.npy")[9].tolist() == [9, 9, 9]
    project.close()


def test_camera_jitter_gives_each_crop_its_own_camera():
    torch.manual_seed(0)
    grey = torch.full((64, 3, 64, 32), 128, dtype=torch.uint8)
    out = train_transform()(grey)
    assert out.shape == (64, 3, 64, 32) and out.dtype == torch.float32
    assert 0 <= float(out.min()) and float(out.max()) <= 1
    # a colour cast per crop: the red/green balance of a grey crop varies across the batch
    means = out.mean(dim=(2, 3))
    ratio = (means[:, 0] + 1e-3) / (means[:, 1] + 1e-3)
    assert float(ratio.std()) > 0.15
    assert float(means.mean(1).std()) > 0.05  # exposure / gamma vary too
    torch.manual_seed(1)
    again = train_transform()(grey)
    torch.manual_seed(0)
    assert torch.equal(train_transform()(grey), out) and not torch.equal(again, out)  # seeded


def test_camera_jitter_strength_zero_is_identity():
    x = torch.randint(0, 255, (8, 3, 64, 32), dtype=torch.uint8)
    assert torch.allclose(train_transform(0.0)(x), x.float() / 255)
    single = train_transform()(x[0])
    assert single.shape == (3, 64, 32)


def test_background_mix_keeps_the_centre_and_takes_the_sides_from_another_crop():
    mask = centre_mask(64, 32)
    assert float(mask[32, 16]) == 1.0 and float(mask[0, 0]) == 0.0 and float(mask[32, 0]) == 0.0
    assert float(mask[0, 16]) > 0.5  # head and feet mostly kept: the person fills the box's height
    dark, light = torch.zeros(3, 64, 32), torch.ones(3, 64, 32)
    out = background_mix(torch.stack([dark, light]), torch.tensor([True, False]), torch.tensor([1, 0]))
    assert float(out[0, :, 32, 16].max()) == 0.0  # the centre is the crop's own
    assert float(out[0, :, 32, 0].min()) == 1.0 and float(out[0, :, 0, 0].min()) == 1.0  # the sides are the donor's
    assert torch.equal(out[1], light)  # not drawn for mixing: untouched


def test_background_donors_come_from_another_video_and_repeat_under_a_seed():
    video = torch.tensor([0, 0, 0, 0, 1, 1, 2, 2])
    torch.manual_seed(0)
    mix, donor = background_donors(video, 1.0)
    assert bool(mix.all())
    assert bool((video[donor] != video).all())  # never the crop's own scene
    torch.manual_seed(0)
    again = background_donors(video, 1.0)
    assert torch.equal(again[0], mix) and torch.equal(again[1], donor)  # seeded: exact resume
    one_video = torch.zeros(6, dtype=torch.long)
    _, donor = background_donors(one_video, 0.5)
    assert bool((donor != torch.arange(6)).all())  # one video: another crop of it
    assert int(background_donors(torch.arange(1000), 0.5)[0].sum()) in range(430, 571)  # about the share asked


def test_background_donors_draw_the_two_views_of_a_pair_apart():
    video = torch.arange(2000)  # a views 0..999, b views 1000..1999
    torch.manual_seed(1)
    mix, _ = background_donors(video, 0.5)
    a, b = mix[:1000], mix[1000:]
    assert bool((a ^ b).all())  # at a half, exactly one view of every pair
    mix, _ = background_donors(video, 0.25)
    a, b = mix[:1000], mix[1000:]
    assert not bool((a & b).any()) and int(mix.sum()) in range(430, 571)  # under a half: never both
    mix, _ = background_donors(video, 0.75)
    a, b = mix[:1000], mix[1000:]
    assert bool((a | b).all()) and int(mix.sum()) in range(1430, 1571)  # over a half: never neither
    with pytest.raises(ValueError):
        background_donors(torch.arange(5), 0.5)


def test_gpu_decoding_is_chosen_where_it_was_measured_faster(monkeypatch):
    from idstudio.core import data

    monkeypatch.delenv("IDSTUDIO_GPU_DECODE", raising=False)
    monkeypatch.setattr(data.os, "cpu_count", lambda: 16)  # 8 CPU threads beat nvJPEG (H200 figures)
    assert not data.gpu_decode_available("cuda", SPEC)
    monkeypatch.setattr(data.os, "cpu_count", lambda: 4)  # 3 threads do not
    assert data.gpu_decode_available("cuda", SPEC)
    assert not data.gpu_decode_available("cpu", SPEC) and not data.gpu_decode_available(None, SPEC)
    monkeypatch.setenv("IDSTUDIO_GPU_DECODE", "0")
    assert not data.gpu_decode_available("cuda", SPEC)
    monkeypatch.setenv("IDSTUDIO_GPU_DECODE", "1")
    monkeypatch.setattr(data.os, "cpu_count", lambda: 16)
    assert data.gpu_decode_available("cuda", SPEC)
