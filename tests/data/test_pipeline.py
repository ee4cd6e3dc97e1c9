import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
from helpers import blocks, write_pair
from PIL import Image

from spade_tf import get_preset
from spade_tf.data import find_files
from spade_tf.data.pipeline import build_dataset, numpy_batches

PALETTE = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [255, 255, 255]], np.uint8)


def colour_dataset(tmp_path, rng, n=4, h=40, w=48):
    for i in range(n):
        labels = blocks(rng, h, w, 6)
        write_pair(tmp_path, f"s{i}", labels, image=PALETTE[labels], image_ext=".png",
                   instance=blocks(rng, h, w, 3))
    return find_files(str(tmp_path), use_instance_map=True)


def test_crop_and_flip_are_identical_for_image_label_and_instance(tmp_path, rng):
    # Images are the label colours, and load_size is the file size, so no
    # resize blurs them: every pixel of a crop must still agree.
    files = colour_dataset(tmp_path, rng, h=40, w=40)
    cfg = get_preset("custom", label_nc=6, use_instance_map=True, crop_size=32, load_size=40)
    ds = build_dataset(cfg, files, training=True, batch_size=4, seed=3)
    sources = [np.array(Image.open(p)) for p in files.labels]
    flipped = unflipped = 0
    for batch in numpy_batches(ds, 4):
        colours = np.round((batch["image"] + 1) * 127.5).astype(np.uint8)
        np.testing.assert_array_equal(colours, PALETTE[batch["label"]])
        for label, seg in zip(batch["label"], batch["segmap"]):
            np.testing.assert_array_equal(seg[..., :6].argmax(-1), label)
            for src in sources:
                for y in range(9):
                    for x in range(9):
                        window = src[y:y + 32, x:x + 32]
                        flipped += np.array_equal(window[:, ::-1], label) and not np.array_equal(window, label)
                        unflipped += np.array_equal(window, label)
    assert flipped > 0 and unflipped > 0  # every example is a real crop, some flipped


def test_label_resize_is_nearest_like_pil(tmp_path, rng):
    files = colour_dataset(tmp_path, rng, n=2, h=50, w=70)
    cfg = get_preset("custom", label_nc=6, crop_size=32, preprocess_mode="fixed", use_instance_map=False)
    batch = numpy_batches(build_dataset(cfg, files, training=False, batch_size=2), 1)[0]
    for label, path in zip(batch["label"], files.labels):
        expected = np.array(Image.open(path).resize((32, 32), Image.NEAREST))
        np.testing.assert_array_equal(label, expected)
        assert set(np.unique(label)) <= set(np.unique(np.array(Image.open(path))))


def test_image_resize_is_close_to_pil_bicubic(tmp_path, rng):
    for i in range(2):
        image = (rng.uniform(size=(1, 1, 3)) * 255 * np.linspace(0, 1, 90)[:, None, None]
                 * np.linspace(0.2, 1, 120)[None, :, None]).astype(np.uint8)
        write_pair(tmp_path, f"g{i}", np.zeros((90, 120), np.uint8), image=image, image_ext=".png")
    files = find_files(str(tmp_path))
    cfg = get_preset("custom", label_nc=6, crop_size=64, preprocess_mode="fixed", use_instance_map=False)
    batch = numpy_batches(build_dataset(cfg, files, training=False, batch_size=2), 1)[0]
    for image, path in zip(batch["image"], files.images):
        expected = np.array(Image.open(path).resize((64, 64), Image.BICUBIC)).astype(np.float32)
        got = (image + 1) * 127.5
        assert np.abs(got - expected).mean() < 1.0 and np.abs(got - expected).max() <= 8


def test_coco_sample_batches(coco_mini):
    cfg = get_preset("coco", crop_size=128, load_size=143)
    files = find_files(coco_mini, use_instance_map=True)
    batch = numpy_batches(build_dataset(cfg, files, training=True, batch_size=3), 1)[0]
    assert batch["segmap"].shape == (3, 128, 128, 184)
    assert batch["image"].shape == (3, 128, 128, 3)
    assert -1.0 <= batch["image"].min() and batch["image"].max() <= 1.0
    np.testing.assert_array_equal(batch["segmap"][..., :183].sum(-1), 1.0)
    edges = batch["segmap"][..., 183]
    assert 0 < edges.mean() < 0.5
    ids = set(np.unique(batch["label"]))
    assert ids <= set(range(182)) | {255}


def test_same_seed_same_batches_other_seed_differs(tmp_path, rng):
    files = colour_dataset(tmp_path, rng)
    cfg = get_preset("custom", label_nc=6, use_instance_map=True, crop_size=32, load_size=36)
    run = lambda seed: numpy_batches(build_dataset(cfg, files, training=True, batch_size=2, seed=seed), 3)  # noqa
    a, b, c = run(1), run(1), run(2)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x["image"], y["image"])
    assert any(not np.array_equal(x["image"], z["image"]) for x, z in zip(a, c))


def test_eval_pipeline_is_finite_and_ordered(tmp_path, rng):
    files = colour_dataset(tmp_path, rng, n=3)
    cfg = get_preset("custom", label_nc=6, use_instance_map=True, crop_size=32, load_size=36)
    batches = numpy_batches(build_dataset(cfg, files, training=False, batch_size=2), 5)
    assert [len(b["image"]) for b in batches] == [2, 1]  # no repeat, remainder kept
    first = np.array(Image.open(files.labels[0]).resize((36, 36), Image.NEAREST))[2:34, 2:34]
    np.testing.assert_array_equal(batches[0]["label"][0], first)  # centre crop, file order


def test_sharding_splits_files_between_pipelines(tmp_path, rng):
    files = colour_dataset(tmp_path, rng, n=4)
    cfg = get_preset("custom", label_nc=6, use_instance_map=True, crop_size=32, load_size=36)
    seen = []
    for i in range(2):
        ctx = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=i, num_replicas_in_sync=2)
        ds = build_dataset(cfg, files, training=False, batch_size=4, input_context=ctx)
        seen.append(numpy_batches(ds, 1)[0]["label"])
    assert len(seen[0]) == len(seen[1]) == 2
    assert not any(np.array_equal(a, b) for a in seen[0] for b in seen[1])


def test_out_of_range_label_fails_in_graph_naming_the_file(tmp_path, rng):
    write_pair(tmp_path, "bad", np.full((36, 36), 9, np.uint8))
    files = find_files(str(tmp_path))
    cfg = get_preset("custom", label_nc=6, crop_size=32, load_size=36)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"(?s)out of range.*bad.png"):
        numpy_batches(build_dataset(cfg, files, training=False, batch_size=1), 1)


def test_synthetic_dataset_batches():
    cfg = get_preset("synthetic")
    ds = build_dataset(cfg, find_files(dataset_mode="synthetic"), training=True, batch_size=4, num_synthetic=8)
    batches = numpy_batches(ds, 3)  # repeats past 8 scenes
    assert batches[0]["segmap"].shape == (4, 64, 64, 8)
    assert batches[0]["label"].max() < 8
    val = numpy_batches(build_dataset(cfg, find_files(dataset_mode="synthetic"), training=False,
                                      batch_size=4, num_synthetic=4), 3)
    assert len(val) == 1
    assert not np.array_equal(val[0]["label"], batches[0]["label"])


def copy_with_16bit_ids(src, dst):
    """Copies a coco-layout dataset, re-saving label and instance maps as 16-bit PNGs."""
    for folder in sorted(os.listdir(src)):
        os.makedirs(os.path.join(dst, folder))
        for name in sorted(os.listdir(os.path.join(src, folder))):
            path, out = os.path.join(src, folder, name), os.path.join(dst, folder, name)
            if folder.endswith(("_label", "_inst")):
                ids = np.asarray(Image.open(path)).astype(np.uint16)
                Image.fromarray(ids).save(out)  # mode I;16
                assert Image.open(out).mode == "I;16"
            else:
                shutil.copyfile(path, out)


@pytest.mark.parametrize("training", [False, True])
def test_16bit_label_and_instance_pngs_read_as_their_ids(coco_mini, tmp_path, training):
    copy_with_16bit_ids(coco_mini, tmp_path)
    cfg = get_preset("coco", crop_size=64, load_size=72)
    batches = {}
    for name, root in (("8bit", coco_mini), ("16bit", str(tmp_path))):
        files = find_files(root, "coco", use_instance_map=True)
        ds = build_dataset(cfg, files, training=training, batch_size=4, seed=3)
        flat = build_dataset(cfg, files, training=training, batch_size=4, seed=3, one_hot=False)
        batches[name] = [{**a, **b} for a, b in zip(numpy_batches(ds, 3), numpy_batches(flat, 3))]
    assert len(batches["16bit"]) == 3
    for a, b in zip(batches["8bit"], batches["16bit"]):
        assert set(a) == {"image", "label", "segmap", "edges", "instance"}
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    if not training:  # centre crop of the nearest-resized file, as PIL reads it
        first = find_files(coco_mini, "coco", use_instance_map=True)
        for key, path in (("label", first.labels[0]), ("instance", first.instances[0])):
            expected = np.array(Image.open(path).resize((72, 72), Image.NEAREST))[4:68, 4:68]
            np.testing.assert_array_equal(batches["16bit"][0][key][0], expected, err_msg=key)


def test_16bit_ids_above_255_fail_in_graph_instead_of_wrapping(tmp_path, rng):
    # Read as uint8, 16-bit 259 became its high byte 1: a valid id, silently wrong.
    ids = blocks(rng, 36, 36, 6).astype(np.uint16)
    ids[:4] = 259
    os.makedirs(tmp_path / "labels")
    write_pair(tmp_path, "wide", np.zeros((36, 36), np.uint8))
    Image.fromarray(ids).save(tmp_path / "labels" / "wide.png")
    cfg = get_preset("custom", label_nc=6, crop_size=32, load_size=36)
    files = find_files(str(tmp_path))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"(?s)out of range.*wide.png.*max id:.*259"):
        numpy_batches(build_dataset(cfg, files, training=False, batch_size=1), 1)


def test_positional_maps_are_computed_on_the_label_as_read_then_cropped_and_flipped_with_it(tmp_path, rng):
    # CLADE-ICPE: the official maps are computed offline on the whole label
    # map, then cropped and flipped like it (a flip moves the w offsets without
    # negating them, as official transform_offset).
    from spade_tf.positional import positional_encoding_numpy

    files = colour_dataset(tmp_path, rng, h=40, w=40)
    cfg = get_preset("custom", label_nc=6, use_instance_map=True, crop_size=32, load_size=40,
                     norm_mode="clade", use_positional_encoding=True)
    ds = build_dataset(cfg, files, training=True, batch_size=4, seed=3)
    sources = [np.array(Image.open(p)) for p in files.labels]
    maps = [positional_encoding_numpy(src) for src in sources]
    checked = flips = 0
    for batch in numpy_batches(ds, 3):
        assert batch["positional"].shape == (4, 32, 32, 2)
        for label, positional in zip(batch["label"], batch["positional"]):
            for src, full in zip(sources, maps):
                for y in range(9):
                    for x in range(9):
                        window = src[y:y + 32, x:x + 32]
                        if np.array_equal(window, label):
                            expected = full[y:y + 32, x:x + 32]
                        elif np.array_equal(window[:, ::-1], label):
                            expected, flips = full[y:y + 32, x:x + 32][:, ::-1], flips + 1
                        else:
                            continue
                        np.testing.assert_allclose(positional, expected, atol=2e-6)
                        checked += 1
    assert checked >= 12 and flips > 0
