import numpy as np
import pytest
import tensorflow as tf
from helpers import one_hot_segmap

from spade_tf import get_preset
from spade_tf.training import (
    SPADEGAN,
    ConstantThenLinearDecay,
    conditions_from_batch,
    make_optimizers,
    segmap_from_batch,
)


def tiny(**overrides):
    return get_preset("coco", **{
        "ngf": 4, "ndf": 4, "crop_size": 32, "load_size": 32, "spade_hidden": 8, "z_dim": 8,
        "use_vae": True, "use_vgg_loss": False, "batch_size": 2, **overrides})


def batch(rng, cfg):
    return {
        "segmap": tf.constant(one_hot_segmap(rng, 2, 32, 32, cfg.semantic_nc)),
        "image": tf.constant(rng.uniform(-1, 1, size=(2, 32, 32, 3)).astype("float32")),
    }


def snapshot(variables):
    return [v.numpy().copy() for v in variables]


def changed(before, variables):
    return [not np.array_equal(b, v.numpy()) for b, v in zip(before, variables)]


def test_generator_step_moves_g_and_e_only_and_discriminator_step_d_only(rng):
    cfg = tiny()
    model = SPADEGAN(cfg)
    model.compile(steps_per_epoch=10)
    data = batch(rng, cfg)
    g_vars, d_vars = model.g_variables, model.d_variables
    assert len(model.encoder.trainable_variables) > 0
    g0, d0 = snapshot(g_vars), snapshot(d_vars)
    terms = model.generator_step(data["segmap"], data["image"])
    assert set(terms) == {"G_GAN", "G_GAN_Feat", "KLD"}
    assert all(changed(g0, g_vars)), [v.path for v, c in zip(g_vars, changed(g0, g_vars)) if not c]
    assert not any(changed(d0, d_vars))
    g1, d1 = snapshot(g_vars), snapshot(d_vars)
    terms = model.discriminator_step(data["segmap"], data["image"])
    assert set(terms) == {"D_Fake", "D_real"}
    unchanged = [v.path for v, c in zip(d_vars, changed(d1, d_vars)) if not c]
    # The logits' bias can get an exactly zero gradient: while every logit is
    # inside the hinge margin, the real term gives -1/N and the fake +1/N.
    assert all(p.endswith("model4_conv/bias") for p in unchanged), unchanged
    assert not any(changed(g1, g_vars))


def test_generator_step_discriminates_as_one_batch_of_fake_and_real(rng):
    # The generator's step runs D on the fake, then on the real half with the
    # power iteration's stored u, v: the predictions, the power iteration (once)
    # and the gradient reaching the generator are those of the official one batch.
    from spade_tf import losses

    cfg = tiny(use_vae=False)
    model = SPADEGAN(cfg)
    model.compile(steps_per_epoch=10)
    data = batch(rng, cfg)
    fake = tf.constant(rng.uniform(-1, 1, size=(2, 32, 32, 3)).astype("float32"))
    vectors = [v for v in model.discriminator.non_trainable_variables if v.path.endswith(("/u", "/v"))]
    assert len(vectors) == 2 * 2 * 3  # u and v of model1..3_conv at each of the 2 scales (as official)
    start = snapshot(vectors)

    def run(discriminate):
        for variable, value in zip(vectors, start):
            variable.assign(value)
        with tf.GradientTape() as tape:
            tape.watch(fake)
            pred_fake, pred_real = discriminate(data["segmap"], fake, data["image"])
            loss = losses.gan_loss(pred_fake, True, for_discriminator=False) + losses.feature_matching_loss(
                pred_fake, pred_real)
        return pred_fake, pred_real, tape.gradient(loss, fake).numpy(), snapshot(vectors)

    one_batch = run(model.discriminate)
    two_passes = run(model.discriminate_for_generator)
    for a, b in zip(tf.nest.flatten(one_batch[:2]), tf.nest.flatten(two_passes[:2])):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-5, atol=1e-6)
    assert np.abs(one_batch[2]).max() > 1e-4  # a gradient to compare
    np.testing.assert_allclose(two_passes[2], one_batch[2], rtol=1e-4, atol=1e-7)
    assert all(changed(start, vectors))  # one power iteration ran...
    for a, b in zip(one_batch[3], two_passes[3]):  # ...the same as the one batch's
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7)


def test_train_step_logs_every_term_and_counts_steps(rng):
    cfg = tiny(use_vgg_loss=True)
    model = SPADEGAN(cfg)
    model.compile(steps_per_epoch=10)
    logs = model.train_step(batch(rng, cfg))
    assert set(logs) == {"G_GAN", "G_GAN_Feat", "G_VGG", "KLD", "D_Fake", "D_real"}
    assert all(np.isfinite(float(v)) for v in logs.values())
    assert int(model.step.numpy()) == 1


def test_d_steps_per_g_skips_generator_steps(rng):
    cfg = tiny(D_steps_per_G=2, use_vae=False)
    model = SPADEGAN(cfg)
    model.compile(steps_per_epoch=10)
    data = batch(rng, cfg)
    g0 = snapshot(model.g_variables)
    logs0 = model.train_step(data)  # step 0: G and D
    g1 = snapshot(model.g_variables)
    assert any(changed(g0, model.g_variables))
    logs1 = model.train_step(data)  # step 1: D only
    assert not any(changed(g1, model.g_variables))
    # The G trackers' means count only steps that ran G.
    assert float(logs1["G_GAN"]) == float(logs0["G_GAN"])
    assert float(logs1["D_real"]) != float(logs0["D_real"])


def test_fit_runs_with_keras_progress_bar(rng):
    cfg = tiny(use_vae=False)
    model = SPADEGAN(cfg)
    model.compile(steps_per_epoch=10)
    data = batch(rng, cfg)
    ds = tf.data.Dataset.from_tensors(data).repeat(2)
    history = model.fit(ds, epochs=1, verbose=0)
    assert set(history.history) == {"G_GAN", "G_GAN_Feat", "D_Fake", "D_real"}


def test_segmap_from_label_ids_matches_pipeline_one_hot():
    cfg = tiny()
    label = tf.constant([[[0, 255], [181, 3]]], tf.int32)
    inst = tf.constant([[[1, 1], [2, 2]]], tf.int32)
    seg = segmap_from_batch({"label": label, "instance": inst}, cfg).numpy()
    assert seg.shape == (1, 2, 2, 184)
    np.testing.assert_array_equal(seg[0, ..., :183].argmax(-1), [[0, 182], [181, 3]])
    np.testing.assert_array_equal(seg[0, ..., 183], [[1, 1], [1, 1]])


def test_optimizers_follow_ttur_and_schedule():
    cfg = tiny()
    g, d = make_optimizers(cfg.replace(niter=2, niter_decay=4), steps_per_epoch=10)
    assert (g.beta_1, g.beta_2) == (0.0, 0.9)
    schedule = g.learning_rate if callable(g.learning_rate) else g._learning_rate
    # Official: epochs 1..niter+1 at lr, then lr - lr/niter_decay per epoch.
    expected = {0: 1e-4, 29: 1e-4, 30: 0.75e-4, 40: 0.5e-4, 60: 0.0, 100: 0.0}
    for step, lr in expected.items():
        np.testing.assert_allclose(float(g._learning_rate(step)), lr, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(float(d._learning_rate(0)), 4e-4, rtol=1e-6)
    del schedule
    with pytest.raises(ValueError, match="steps_per_epoch=0"):
        ConstantThenLinearDecay(1e-4, 0, 1, 1)


def test_clade_generator_loss_reaches_the_class_rows_of_present_classes_only(rng):
    # CLADE's tables are looked up: through the whole GAN loss, the rows of a
    # class absent from the batch get an exactly zero gradient, the others not.
    # 64x64, so that batch norm at the 2x2 first feature map does not flatten
    # the gradient (two values normalize to +-1 whatever they are); quadrants
    # of 4 classes, so that every class is present at every resolution.
    cfg = tiny(norm_mode="clade", use_vae=False, crop_size=64, load_size=64)
    model = SPADEGAN(cfg)
    model.compile(steps_per_epoch=10)
    quadrants = np.array([[[0, 3], [7, 255]], [[255, 0], [3, 7]]])
    ids = quadrants.repeat(32, axis=1).repeat(32, axis=2)
    ids[1, 40:50, 5:9] = 3  # and a small region that only the finer layers see
    data = {"label": tf.constant(ids, tf.int32), "instance": tf.constant(ids, tf.int32),
            "image": tf.constant(rng.uniform(-1, 1, size=(2, 64, 64, 3)).astype("float32"))}
    tables = [v for v in model.generator.trainable_variables if v.path.endswith(("class_weight", "class_bias"))]
    assert len(tables) == 2 * (2 * 7 + 4)  # norm_0, norm_1 per block, norm_s in the 4 up blocks
    conditions = conditions_from_batch(data, cfg)
    with tf.GradientTape() as tape:
        terms = model.generator_losses(conditions, data["image"])
        total = sum(terms.values())
    present = np.zeros(cfg.num_classes, bool)
    present[[0, 3, 7, cfg.dontcare_channel]] = True
    for grad, v in zip(tape.gradient(total, tables), tables):
        reached = np.any(tf.convert_to_tensor(grad).numpy() != 0, axis=1)  # IndexedSlices of a gather
        np.testing.assert_array_equal(reached, present, err_msg=v.path)
    logs = model.train_step(data)  # and a whole step runs
    assert all(np.isfinite(float(v)) for v in logs.values())
