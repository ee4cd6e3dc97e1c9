"""tf.data input pipelines, processing as NVlabs' loader does.

Per pair: decode; resize (labels and instance maps nearest-neighbour, images
bicubic) as ``preprocess_mode`` says; one random crop and one random flip
applied alike to image, label and instance map; image to [-1, 1]; label ids to
one-hot channels (255 = don't care -> channel ``label_nc``) plus the
instance-edge channel, all in the graph.

Randomness is stateless, drawn from ``tf.data.Dataset.random(seed)`` zipped
with the files, so a given seed gives the same crops and flips whatever the
parallelism.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from spade_tf.config import SPADEConfig
from spade_tf.data import synthetic
from spade_tf.data.layouts import DatasetFiles, unpaired_error
from spade_tf.positional import positional_encoding
from spade_tf.segmap import edge_map, make_segmap, valid_ids_mask, valid_label_ids

AUTOTUNE = tf.data.AUTOTUNE
SYNTHETIC_VAL_FIRST_SEED = 1_000_000


def _resize_nearest(x, size):
    return tf.image.resize(x, size, method="nearest")


def _process(image, maps, rng_seed, config: SPADEConfig, training: bool):
    """Resize, crop, flip, normalize one example.

    ``image`` [H, W, 3] uint8; ``maps``: {"label", ["instance"], ["positional"]}
    [H, W, C] maps that follow the label (nearest resize, the same crop and
    flip); returns the image and the maps with their channel axis dropped
    where it is 1.
    """
    out_h, out_w = config.image_size
    shape = tf.shape(maps["label"])
    h, w = shape[0], shape[1]
    mode = config.preprocess_mode
    if mode == "resize_and_crop":
        size = tf.constant([config.load_size, config.load_size])
    elif mode == "scale_width_and_crop":
        size = tf.stack([config.load_size * h // w, tf.constant(config.load_size)])
    elif mode == "fixed":
        size = tf.constant([out_h, out_w])
    else:
        size = None
    image = tf.cast(image, tf.float32)
    if size is not None:
        # PIL-style antialiased bicubic for photos (torchvision Resize),
        # nearest with pixel centres for ids (PIL NEAREST).
        image = tf.clip_by_value(
            tf.round(tf.image.resize(image, size, method="bicubic", antialias=True)), 0.0, 255.0
        )
        maps = {k: _resize_nearest(v, size) for k, v in maps.items()}
    seeds = tf.random.experimental.stateless_split(rng_seed, 3)
    cur = tf.shape(maps["label"])
    if mode in ("resize_and_crop", "scale_width_and_crop"):
        tf.debugging.assert_greater_equal(
            cur[0], out_h, message=f"resized image is smaller than the crop height {out_h}")
        if training:
            y = tf.random.stateless_uniform([], seeds[0], 0, cur[0] - out_h + 1, dtype=tf.int32)
            x = tf.random.stateless_uniform([], seeds[1], 0, cur[1] - out_w + 1, dtype=tf.int32)
        else:
            y, x = (cur[0] - out_h) // 2, (cur[1] - out_w) // 2
        image = image[y:y + out_h, x:x + out_w]
        maps = {k: v[y:y + out_h, x:x + out_w] for k, v in maps.items()}
    if training and config.use_flip:
        # The positional maps' w offsets are flipped as pixels, not negated:
        # the official CLADE loader (transform_offset) does the same.
        flip = tf.random.stateless_uniform([], seeds[2]) > 0.5
        image = tf.cond(flip, lambda: tf.reverse(image, [1]), lambda: image)
        maps = {k: tf.cond(flip, lambda v=v: tf.reverse(v, [1]), lambda v=v: v) for k, v in maps.items()}
    image = tf.ensure_shape(image / 127.5 - 1.0, [out_h, out_w, 3])

    def finish(v):
        if v.shape[-1] == 1:
            return tf.ensure_shape(v[..., 0], [out_h, out_w])
        return tf.ensure_shape(v, [out_h, out_w, v.shape[-1]])

    return image, {k: finish(v) for k, v in maps.items()}


def decode_id_png(contents):
    """An 8- or 16-bit grayscale PNG of ids -> [H, W, 1] uint16, the ids as stored.

    ``decode_png`` reads at one fixed depth: uint8 truncates 16-bit ids to
    their high byte, uint16 scales 8-bit ids by 257. So the depth is read per
    file from the PNG header (IHDR: 8-byte signature, length, "IHDR", width,
    height, then the bit depth at byte 24). Validation (``check_pair``) only
    lets 8- and 16-bit grayscale PNGs through.
    """
    depth = tf.io.decode_raw(tf.strings.substr(contents, 24, 1), tf.uint8)[0]
    return tf.cond(
        tf.equal(depth, 16),
        lambda: tf.io.decode_png(contents, channels=1, dtype=tf.uint16),
        lambda: tf.cast(tf.io.decode_png(contents, channels=1), tf.uint16),
    )


def _decode_files(image_path, label_path, instance_path, config: SPADEConfig):
    image = tf.io.decode_image(tf.io.read_file(image_path), channels=3, expand_animations=False)
    label = decode_id_png(tf.io.read_file(label_path))
    instance = None
    if config.use_instance_map:
        # 16-bit covers Cityscapes' instance ids.
        instance = decode_id_png(tf.io.read_file(instance_path))
    ids = tf.cast(label, tf.int32)
    tf.debugging.Assert(
        tf.reduce_all(valid_ids_mask(ids, config.label_nc, config.contain_dontcare_label)),
        [f"Label map has ids out of range "
         f"(expected {valid_label_ids(config.label_nc, config.contain_dontcare_label)}):",
         label_path, "max id:", tf.reduce_max(ids)],
    )
    return image, label, instance


def _finish(image, maps, config, one_hot):
    label, instance = maps["label"], maps.get("instance")
    example = {"image": image, "label": tf.cast(label, tf.int32)}
    if "positional" in maps:
        example["positional"] = maps["positional"]
    if one_hot:
        example["segmap"] = make_segmap(label, instance, config)
    elif instance is not None:
        example["edges"] = edge_map(instance)
        example["instance"] = tf.cast(instance, tf.int32)
    return example


def build_dataset(
    config: SPADEConfig,
    files: DatasetFiles,
    *,
    training: bool,
    batch_size: int,
    seed: int = 0,
    repeat: bool | None = None,
    shuffle: bool | None = None,
    drop_remainder: bool | None = None,
    cache: bool | str = False,
    deterministic: bool = True,
    one_hot: bool = True,
    input_context: tf.distribute.InputContext | None = None,
    num_synthetic: int = 1000,
) -> tf.data.Dataset:
    """The input pipeline of one split.

    Args:
        config: model config (labels, sizes, preprocess mode, flip).
        files: from ``find_files`` (ideally through ``validate_files``).
        training: random crop and flip (else centre crop, no flip).
        batch_size: per-replica batch size when ``input_context`` is given
            (``distribute_datasets_from_function``), else the batch size.
        seed: shuffling and augmentation seed.
        repeat, shuffle, drop_remainder: default to ``training``.
        cache: cache decoded files in memory (True) or in a file (a path).
        deterministic: element order independent of thread timing.
        one_hot: add ``"segmap"`` [B, H, W, semantic_nc]; otherwise add
            ``"edges"`` [B, H, W] float and ``"instance"`` [B, H, W] int32 ids
            when instance maps are used.
        input_context: shards the files per input pipeline (tf.distribute).
        num_synthetic: scenes per epoch for the synthetic dataset.

    Returns:
        Dataset of dicts: ``"image"`` float32 [B, H, W, 3] in [-1, 1],
        ``"label"`` int32 [B, H, W] ids as in the files, ``"segmap"``, and
        with ``use_positional_encoding`` ``"positional"`` float32
        [B, H, W, 2] (CLADE-ICPE maps).
    """
    repeat = training if repeat is None else repeat
    shuffle = training if shuffle is None else shuffle
    drop_remainder = training if drop_remainder is None else drop_remainder
    h, w = config.image_size

    if files.mode == "synthetic":
        first = 0 if training else SYNTHETIC_VAL_FIRST_SEED
        ds = tf.data.Dataset.range(first, first + num_synthetic)
        if input_context is not None:
            ds = ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
        if shuffle:
            ds = ds.shuffle(num_synthetic, seed=seed, reshuffle_each_iteration=True)

        def load(scene_seed):
            labels, image = tf.numpy_function(
                lambda s: synthetic.scene(int(s), h, w), [scene_seed], [tf.uint8, tf.uint8]
            )
            return tf.ensure_shape(image, [h, w, 3]), tf.ensure_shape(labels, [h, w])[..., None], None
    else:
        if files.unpaired:  # validate_files(skip_bad_pairs=True) drops them
            raise unpaired_error(files)
        if not len(files):
            raise ValueError("build_dataset: the file list is empty.")
        columns = (list(files.images), list(files.labels))
        if config.use_instance_map:
            if len(files.instances) != len(files):
                raise ValueError("build_dataset: the config uses instance maps but the files have none.")
            columns += (list(files.instances),)
        ds = tf.data.Dataset.from_tensor_slices(columns)
        if input_context is not None:
            ds = ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
        if shuffle:
            ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)

        def load(*paths):
            return _decode_files(paths[0], paths[1], paths[2] if len(paths) > 2 else None, config)

    # Decode (and optionally cache) before the random augmentation.
    ds = ds.map(lambda *x: _pack(*load(*x), config), num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    if cache:
        ds = ds.cache("" if cache is True else cache)
    if repeat:
        ds = ds.repeat()
    ds = tf.data.Dataset.zip((ds, tf.data.Dataset.random(seed=seed).batch(2)))

    def augment(example, rng_seed):
        maps = {k: v for k, v in example.items() if k != "image"}
        image, maps = _process(example["image"], maps, rng_seed, config, training)
        return _finish(image, maps, config, one_hot)

    ds = ds.map(augment, num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    options = tf.data.Options()
    options.deterministic = deterministic
    ds = ds.with_options(options)
    return ds.prefetch(AUTOTUNE)


def _pack(image, label, instance, config: SPADEConfig):
    """One decoded example; CLADE-ICPE's maps are computed here, on the label map as read
    (before resizing and cropping, as the official precomputed maps), and cached with it."""
    example = {"image": image, "label": label}
    if instance is not None:
        example["instance"] = instance
    if config.use_positional_encoding:
        example["positional"] = positional_encoding(label[..., 0])
    return example


def numpy_batches(dataset, count: int):
    """First ``count`` batches as NumPy dicts (for tests and tools)."""
    return [
        {k: np.asarray(v) for k, v in batch.items()} for batch in dataset.take(count).as_numpy_iterator()
    ]
