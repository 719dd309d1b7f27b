"""Synthetic generator: read back through the real readers, determinism, semantics of expressions, atomic writes."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from scipy.ndimage import binary_erosion

from data import synthetic
from data.readers import open_dataset
from data.synthetic import SceneObject, SceneRules, generate_synthetic_dataset
from data.types import NO_TARGET, REASONING, REFERRING
from rl.config import SyntheticConfig


def tiny_cfg(**overrides) -> SyntheticConfig:
    values = dict(num_videos=4, num_frames=4, height=48, width=64, max_objects=3, seed=3)
    values.update(overrides)
    return SyntheticConfig(**values)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    cfg = tiny_cfg()
    folder = generate_synthetic_dataset(tmp_path_factory.mktemp("synth"), cfg, split="train")
    return cfg, folder


def test_layout_and_meta(dataset):
    cfg, folder = dataset
    assert folder.name == "train" and (folder / "meta_expressions.json").is_file()
    for name in ("mask_dict.json", "mask_dict_foreground.json", synthetic.MARKER_NAME):
        assert (folder / name).is_file()
    meta = json.loads((folder / "meta_expressions.json").read_text())["videos"]
    assert len(meta) == cfg.num_videos
    for entry in meta.values():
        assert (entry["height"], entry["width"]) == (cfg.height, cfg.width)
        assert len(entry["frames"]) == cfg.num_frames
        for exp in entry["expressions"].values():
            assert set(exp) == {"exp", "obj_id", "anno_id", "type_id"}
            assert len(exp["obj_id"]) == len(exp["anno_id"])
            assert (exp["type_id"] == NO_TARGET) == (not exp["anno_id"])


def test_readers_round_trip_generator_output(dataset):
    cfg, folder = dataset
    rules = SceneRules()
    for root, fmt in ((folder, "synthetic"), (folder.parent, "synthetic"), (folder, "revos")):
        reader = open_dataset(root, fmt, split="train")
        assert len(reader) == cfg.num_videos
    meta = json.loads((folder / "meta_expressions.json").read_text())["videos"]
    for index, vid in enumerate(reader.video_ids()):
        drawn = synthetic.generate_video(cfg, rules, synthetic.video_rng(cfg, "train", index))
        sample = reader[vid]
        assert (sample.height, sample.width, sample.num_frames) == (cfg.height, cfg.width, cfg.num_frames)
        assert [(e.text, e.type_id) for e in sample.expressions.values()] == [
            (e.text, e.type_id) for e in drawn.expressions]
        anno_of = {o["obj_id"]: str(o["anno_id"]) for o in meta[vid]["objects"]}
        for exp_id, exp in zip(sample.expressions, drawn.expressions):
            assert sample.expressions[exp_id].obj_ids == tuple(anno_of[k] for k in exp.targets)
            for t in range(cfg.num_frames):
                expected = drawn.masks[list(exp.targets), t].any(axis=0) if exp.targets else np.zeros(
                    (cfg.height, cfg.width), bool)
                assert np.array_equal(sample.expression_mask(exp_id, t), expected)
        for t in range(cfg.num_frames):
            assert np.array_equal(sample.foreground_loader(t), drawn.masks[:, t].any(axis=0))
            frame = sample.load_frame(t)
            assert np.abs(frame.astype(int) - drawn.frames[t].astype(int)).mean() < 4  # JPEG, quality 95


def test_masks_match_pixels_and_targets_are_large(dataset):
    cfg, folder = dataset
    reader = open_dataset(folder, "synthetic", split="train")
    rules = SceneRules()
    min_pixels = cfg.min_target_area * cfg.height * cfg.width
    for sample in reader:
        objects = {str(o["anno_id"]): o for o in sample.extra["objects"]}
        masks = {aid: np.stack([sample.object_mask(aid, t) for t in range(sample.num_frames)])
                 for aid in sample.mask_loaders}
        for exp_id, exp in sample.expressions.items():
            union = sample.expression_masks(exp_id)
            if exp.type_id == NO_TARGET:
                assert not union.any()
            else:
                assert union.reshape(sample.num_frames, -1).sum(axis=1).max() >= min_pixels
        stacked = np.stack(list(masks.values())) if masks else np.zeros((0,))
        if masks:
            assert stacked.sum(axis=0).max() <= 1  # occlusion: visible masks are disjoint
        for aid, m in masks.items():  # interior pixels carry the object's colour
            colour = np.array(rules.colours[objects[aid]["colour"]])
            for t in range(sample.num_frames):
                # two pixels away from the mask border: past the outline and JPEG ringing
                inner = binary_erosion(m[t], structure=np.ones((3, 3)), iterations=2, border_value=0)
                if inner.sum() >= 10:
                    pixels = sample.load_frame(t)[inner].astype(float)
                    assert np.abs(pixels.mean(axis=0) - colour).max() < 30


def test_expression_text_matches_object_attributes(dataset):
    _, folder = dataset
    reader = open_dataset(folder, "synthetic", split="train")
    kinds = set()
    for sample in reader:
        objects = sample.extra["objects"]
        pairs = {(o["colour"], o["shape"]) for o in objects}
        for exp in sample.expressions.values():
            kinds.add(exp.type_id)
            targets = {str(o["anno_id"]) for o in objects}
            single = re.fullmatch(r"the (\w+) (circle|square|triangle|star)", exp.text)
            plural_shape = re.fullmatch(r"all the (circle|square|triangle|star)s", exp.text)
            if single:
                expected = {str(o["anno_id"]) for o in objects if (o["colour"], o["shape"]) == single.groups()}
                assert set(exp.obj_ids) == expected
                assert (exp.type_id == NO_TARGET) == (single.groups() not in pairs)
            elif plural_shape:
                assert set(exp.obj_ids) == {str(o["anno_id"]) for o in objects if o["shape"] == plural_shape[1]}
                assert len(exp.obj_ids) >= 2
            assert set(exp.obj_ids) <= targets
    assert REFERRING in kinds and NO_TARGET in kinds


def test_ramp_background_carries_position(dataset):
    cfg, folder = dataset
    sample = next(iter(open_dataset(folder, "synthetic", split="train")))
    frame = sample.load_frame(0).astype(float)
    background = ~sample.foreground_loader(0)
    red = np.where(background, frame[..., 0], np.nan)
    green = np.where(background, frame[..., 1], np.nan)
    rules = SceneRules()
    span = rules.ramp_high - rules.ramp_low
    assert np.nanmean(red[:, -6:]) - np.nanmean(red[:, :6]) > 0.7 * span   # red grows with x
    assert np.nanmean(green[-6:]) - np.nanmean(green[:6]) > 0.7 * span     # green grows with y
    assert np.nanstd(frame[..., 2][background]) < 3 * cfg.noise_std + 3    # blue flat + noise


def test_determinism_by_seed(tmp_path):
    cfg = tiny_cfg(num_videos=2)
    a = generate_synthetic_dataset(tmp_path / "a", cfg)
    b = generate_synthetic_dataset(tmp_path / "b", cfg)
    c = generate_synthetic_dataset(tmp_path / "c", tiny_cfg(num_videos=2, seed=4))
    v = generate_synthetic_dataset(tmp_path / "a", cfg, split="valid")
    for name in ("meta_expressions.json", "mask_dict.json", "mask_dict_foreground.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
        assert (a / name).read_bytes() != (c / name).read_bytes()
    assert (a / "mask_dict.json").read_bytes() != (v / "mask_dict.json").read_bytes()  # splits differ
    frame = "JPEGImages/synth_00001/00002.jpg"
    assert (a / frame).read_bytes() == (b / frame).read_bytes()


def test_regeneration_skipped_when_identical_and_redone_when_changed(tmp_path):
    cfg = tiny_cfg(num_videos=1)
    folder = generate_synthetic_dataset(tmp_path, cfg)
    meta = folder / "meta_expressions.json"
    stamp = meta.stat().st_mtime_ns
    assert generate_synthetic_dataset(tmp_path, cfg) == folder
    assert meta.stat().st_mtime_ns == stamp
    folder2 = generate_synthetic_dataset(tmp_path, tiny_cfg(num_videos=2))
    assert folder2 == folder and len(json.loads(meta.read_text())["videos"]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train"]  # no temp / trash folders left


def test_killed_run_leaves_no_dataset(tmp_path, monkeypatch):
    real = synthetic._write_split

    def dies_midway(folder, *args):
        real(folder, *args)
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(synthetic, "_write_split", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        generate_synthetic_dataset(tmp_path, tiny_cfg(num_videos=1))
    assert list(tmp_path.iterdir()) == []


def _generate_after_barrier(root: str, barrier, results) -> None:
    barrier.wait()
    final = generate_synthetic_dataset(root, SyntheticConfig(num_videos=4, num_frames=3, height=64, width=64), "valid")
    inode = final.stat().st_ino                        # the folder this process returned, as it stands now
    results.put((inode, open_dataset(root, "synthetic", "valid").video_ids()))


def test_concurrent_generation_never_replaces_a_finished_split(tmp_path):
    """Evaluator workers generate the same split at once: the first complete split stays in
    place (same folder for everyone), so none of them reads a folder being swapped out."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    workers = 3
    barrier, queue = ctx.Barrier(workers), ctx.Queue()
    procs = [ctx.Process(target=_generate_after_barrier, args=(str(tmp_path), barrier, queue)) for _ in range(workers)]
    for proc in procs:
        proc.start()
    try:
        results = [queue.get(timeout=120) for _ in procs]
    finally:
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
    final = tmp_path / "valid"
    assert {inode for inode, _ in results} == {final.stat().st_ino}
    assert all(len(ids) == 4 and ids == results[0][1] for _, ids in results)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["valid"]      # no temp or trash folder left


def test_refuses_to_overwrite_foreign_folder(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "meta_expressions.json").write_text("{}")
    with pytest.raises(FileExistsError, match="not a synthetic data set"):
        generate_synthetic_dataset(tmp_path, tiny_cfg(num_videos=1))


def test_single_frame_videos_and_bad_config(tmp_path):
    folder = generate_synthetic_dataset(tmp_path, tiny_cfg(num_videos=2, num_frames=1))
    reader = open_dataset(folder, "synthetic", split="train")
    for sample in reader:
        assert sample.num_frames == 1
        assert not any("moves" in e.text or "scene" in e.text for e in sample.expressions.values())
    with pytest.raises(ValueError, match="min_target_area"):
        generate_synthetic_dataset(tmp_path / "x", tiny_cfg(min_target_area=0.0))


def test_cli(tmp_path, capsys):
    assert synthetic.main([str(tmp_path), "split=valid", "num_videos=1", "height=32", "width=40",
                           "num_frames=2", "background=noise"]) == 0
    out = capsys.readouterr().out.strip().splitlines()[-1]
    assert out == str(tmp_path / "valid")
    meta = json.loads((tmp_path / "valid" / "meta_expressions.json").read_text())["videos"]
    assert [(v["height"], v["width"]) for v in meta.values()] == [(32, 40)]
    with pytest.raises(SystemExit):
        synthetic.main([str(tmp_path), "no_such_key=1"])


# ---------------------------------------------------- expression semantics (hand-built scenes)


def _scene_cfg(**kw) -> SyntheticConfig:
    return tiny_cfg(height=100, width=100, num_frames=5, **kw)


def _texts(candidates) -> dict[str, tuple[int, ...]]:
    return {e.text: e.targets for kind in candidates.values() for e in kind}


def test_motion_and_size_expressions_on_a_hand_built_scene():
    cfg, rules = _scene_cfg(), SceneRules()
    objects = [
        SceneObject("red", "circle", 10.0, (70.0, 50.0), (-4.0, 0.0)),    # fastest, to the left
        SceneObject("blue", "square", 14.0, (30.0, 30.0), (1.0, 2.5)),    # right (slow), down
        SceneObject("blue", "circle", 8.0, (50.0, 80.0), (-1.5, -2.0)),   # left (slow), up
    ]
    _, _, in_frame = synthetic.render(objects, cfg, rules, np.random.default_rng(0))
    texts = _texts(synthetic.candidate_expressions(objects, in_frame, cfg, rules, np.random.default_rng(0)))
    assert texts["the object that moves left fastest"] == (0,)
    assert texts["the object that moves right fastest"] == (1,)
    assert texts["the object that moves down fastest"] == (1,)
    assert texts["the object that moves up fastest"] == (2,)
    assert texts["the fastest object"] == (0,)
    # areas: square (1.7 r)^2 = 566 > circle pi 10^2 = 314 > circle pi 8^2 = 201
    assert texts["the largest object"] == (1,) and texts["the smallest object"] == (2,)
    assert texts["the largest blue object"] == (1,)
    assert texts["all the blue objects"] == (1, 2) and texts["all the circles"] == (0, 2)
    assert texts["the red circle"] == (0,) and texts["the blue square"] == (1,)
    assert not any("scene" in t for t in texts)  # nobody enters or leaves


def test_enter_leave_and_no_target_on_a_hand_built_scene():
    cfg, rules = _scene_cfg(), SceneRules()
    objects = [
        SceneObject("green", "triangle", 10.0, (80.0, 50.0), (12.0, 0.0)),   # leaves to the right
        SceneObject("yellow", "star", 10.0, (50.0, -20.0), (0.0, 15.0)),     # enters from the top
        SceneObject("green", "square", 10.0, (20.0, 20.0), (0.0, 0.0)),      # still
    ]
    frames, visible, in_frame = synthetic.render(objects, cfg, rules, np.random.default_rng(0))
    assert in_frame[0, 0] > 0 and in_frame[0, -1] == 0 and in_frame[1, 0] == 0 and in_frame[1, -1] > 0
    candidates = synthetic.candidate_expressions(objects, in_frame, cfg, rules, np.random.default_rng(1))
    texts = _texts(candidates)
    assert texts["the shape that leaves the scene"] == (0,)
    assert texts["the shape that enters the scene"] == (1,)
    assert all(e.type_id == REASONING for e in candidates[REASONING])
    present = {(o.colour, o.shape) for o in objects}
    assert candidates[NO_TARGET] and all(e.targets == () for e in candidates[NO_TARGET])
    for e in candidates[NO_TARGET]:
        colour, shape = e.text.split()[1:]
        assert (colour, shape) not in present
    # the still square (half side 0.85 r = 8.5): side 17 px, 17..19 px once rasterised
    assert 17 * 17 <= int(visible[2, 0].sum()) <= 19 * 19
