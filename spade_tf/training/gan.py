"""The SPADE GAN as a keras.Model with a custom (TensorFlow) train_step."""

from __future__ import annotations

import logging

import keras
import tensorflow as tf

from spade_tf import losses
from spade_tf.config import SPADEConfig
from spade_tf.layers import Reparameterize
from spade_tf.models import build_discriminator, build_encoder, build_generator, build_vgg19
from spade_tf.models.discriminator import as_scales
from spade_tf.models.sean_encoder import build_sean_encoder
from spade_tf.segmap import edge_map, make_segmap
from spade_tf.training.optimizers import FusedAdam
from spade_tf.training.schedules import ConstantThenLinearDecay

G_LOSSES = ("G_GAN", "G_GAN_Feat", "G_VGG", "KLD")
D_LOSSES = ("D_Fake", "D_real")


def segmap_from_batch(batch, config: SPADEConfig):
    """The generator input of a batch: ``"segmap"``, or built from ``"label"``."""
    if "segmap" in batch:
        return batch["segmap"]
    segmap = make_segmap(batch["label"], None, config.replace(use_instance_map=False))
    if config.use_instance_map:
        edges = batch["edges"] if "edges" in batch else edge_map(batch["instance"])
        segmap = tf.concat([segmap, tf.cast(edges, segmap.dtype)[..., None]], axis=-1)
    return segmap


def conditions_from_batch(batch, config: SPADEConfig):
    """The generator's label inputs of a batch: ``{"segmap"}``, plus CLADE-ICPE's ``"positional"``."""
    conditions = {"segmap": segmap_from_batch(batch, config)}
    if config.use_positional_encoding:
        if "positional" not in batch:
            raise KeyError("use_positional_encoding=True but the batch has no 'positional' maps "
                           "(build_dataset adds them; spade_tf.positional.positional_encoding computes them).")
        conditions["positional"] = tf.cast(batch["positional"], tf.float32)
    return conditions


def _conditions(segmap):
    """``segmap`` as a dict of the generator's label inputs (a tensor is the segmap alone)."""
    return dict(segmap) if isinstance(segmap, dict) else {"segmap": segmap}


def make_optimizers(config: SPADEConfig, steps_per_epoch: int, mixed_float16: bool = False):
    """Adam for G (and E) and D with the official rates, betas and schedule."""
    beta1, beta2 = config.adam_betas
    optimizers = []
    for name, lr in zip(("g_optimizer", "d_optimizer"), config.learning_rates):
        schedule = ConstantThenLinearDecay(lr, steps_per_epoch, config.niter, config.niter_decay)
        opt = FusedAdam(schedule, beta_1=beta1, beta_2=beta2, epsilon=1e-8, name=name)
        if mixed_float16:
            opt = keras.optimizers.LossScaleOptimizer(opt, name=f"{name}_loss_scale")
        optimizers.append(opt)
    return optimizers


class SPADEGAN(keras.Model):
    """Generator, multi-scale discriminator and optional encoder, trained as NVlabs does.

    ``train_step`` (TensorFlow backend) per batch: a generator step on every
    ``D_steps_per_G``-th batch, then a discriminator step, as the official
    ``train.py``. Generator loss: hinge G loss + discriminator feature matching
    + VGG + KL (with ``use_vae``; the encoder runs under the tape and trains
    with G). The discriminator step regenerates the fake image with the
    updated G, without gradients, and passes fake and real through D in one
    batch (shared statistics). Both networks are in training mode in both
    steps, so batch-norm statistics and spectral-norm vectors update in both,
    as in PyTorch.

    Under ``tf.distribute`` each replica's mean losses are divided by the
    number of replicas (the optimizers sum gradients across replicas), so an
    update equals the single-device one on the same global batch; the KL term,
    a sum over the batch as official, is not divided.

    Args:
        config: ``SPADEConfig``.
        vgg: optional prebuilt ``VGG19Features`` (default: from
            ``config.vgg_weights`` when ``use_vgg_loss``).

    SEAN (``norm_mode="sean"``): the style encoder (``style_encoder``, the
    official netG's ``Zencoder``) turns each real image into per-region
    style codes under the tape and trains with G; the losses are SPADE's (no
    KL term), as the official SEAN trainer: the generator learns to
    reconstruct the photo of a label map from its own styles.

    Call args (inference): ``{"segmap"}``, plus ``"latent"`` or ``"image"``
    with a VAE (a random latent otherwise), ``"positional"`` with
    CLADE-ICPE, and with SEAN ``"style_codes"`` or the ``"image"`` to encode.
    The step methods take ``segmap`` as a tensor or as such a dict of label
    inputs (``conditions_from_batch``); D sees the segmap only.
    """

    def __init__(self, config: SPADEConfig, vgg=None, **kwargs):
        super().__init__(name=kwargs.pop("name", "spade_gan"), **kwargs)
        self.config = config
        self.generator = build_generator(config)
        self.discriminator = build_discriminator(config)
        self.encoder = build_encoder(config) if config.use_vae else None
        self.style_encoder = build_sean_encoder(config) if config.norm_mode == "sean" else None
        self.sampler = Reparameterize(name="sampler") if config.use_vae else None
        self.vgg = None
        if config.use_vgg_loss:
            weights = config.vgg_weights or None
            if weights is None:
                logging.warning(
                    "use_vgg_loss without vgg_weights: the VGG19 has random weights, so the "
                    "perceptual loss is not the official one. Pass vgg_weights=<torchvision "
                    "vgg19 .pth/.npz or Keras notop .h5> (or 'imagenet' to download Keras')."
                )
            self.vgg = vgg or build_vgg19(weights, (*config.image_size, 3))
        self.step = keras.Variable(
            0, dtype="int64", trainable=False, name="step", aggregation="only_first_replica"
        )
        self.trackers = {
            name: keras.metrics.Mean(name=name)
            for name in G_LOSSES + D_LOSSES
            if (name != "KLD" or config.use_vae) and (name != "G_VGG" or config.use_vgg_loss)
            and (name != "G_GAN_Feat" or config.use_gan_feat_loss)
        }

    # ------------------------------------------------------------------ setup
    def compile(self, g_optimizer=None, d_optimizer=None, steps_per_epoch=1000, **kwargs):
        super().compile(**kwargs)
        if g_optimizer is None or d_optimizer is None:
            g_default, d_default = make_optimizers(self.config, steps_per_epoch)
            g_optimizer = g_optimizer or g_default
            d_optimizer = d_optimizer or d_default
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer

    @property
    def g_variables(self):
        variables = list(self.generator.trainable_variables)
        for encoder in (self.encoder, self.style_encoder):
            if encoder is not None:
                variables += encoder.trainable_variables
        return variables

    @property
    def d_variables(self):
        return list(self.discriminator.trainable_variables)

    def build_optimizers(self):
        """Creates the optimizer slots (needed inside a tf.distribute scope)."""
        self.g_optimizer.build(self.g_variables)
        self.d_optimizer.build(self.d_variables)

    @property
    def metrics(self):
        return list(self.trackers.values())

    # -------------------------------------------------------------- forward
    def call(self, inputs, training=False):
        conditions = {k: inputs[k] for k in ("segmap", "positional") if k in inputs}
        if self.style_encoder is not None:
            if "style_codes" in inputs:
                conditions["style_codes"] = inputs["style_codes"]
            elif "image" in inputs:
                conditions["style_codes"] = self.style_encoder(
                    {"image": inputs["image"], "segmap": inputs["segmap"]}, training=training)
            else:
                raise KeyError("A SEAN model needs 'style_codes' or the 'image' to take them from.")
            return self.generator(conditions, training=training)
        if not self.config.use_vae:
            return self.generator(conditions, training=training)
        if "latent" in inputs:
            latent = inputs["latent"]
        elif "image" in inputs:
            mean, logvar = self.encoder({"image": inputs["image"]}, training=training)
            latent = self.sampler(mean, logvar)
        else:
            latent = keras.random.normal((tf.shape(inputs["segmap"])[0], self.config.z_dim))
        return self.generator({**conditions, "latent": latent}, training=training)

    def generate(self, segmap, image, training=True):
        """(fake, mean, logvar); mean and logvar are None without a VAE."""
        conditions = _conditions(segmap)
        if self.style_encoder is not None:  # SEAN: the real image's own region styles
            conditions["style_codes"] = self.style_encoder(
                {"image": image, "segmap": conditions["segmap"]}, training=training)
        if not self.config.use_vae:
            return self.generator(conditions, training=training), None, None
        mean, logvar = self.encoder({"image": image}, training=training)
        latent = self.sampler(mean, logvar)
        return self.generator({**conditions, "latent": latent}, training=training), mean, logvar

    def discriminate(self, segmap, fake, real, training=True):
        """D on fake and real in one batch; returns (pred_fake, pred_real)."""
        segmap = _conditions(segmap)["segmap"]
        fake = tf.cast(fake, real.dtype)
        pred = as_scales(self.discriminator(
            {"segmap": tf.concat([segmap, segmap], 0), "image": tf.concat([fake, real], 0)},
            training=training,
        ))
        # Halves by a split (its gradient is one concatenation), not slices.
        halves = [[tf.split(t, 2) for t in scale] for scale in pred]
        return [[f for f, _ in scale] for scale in halves], [[r for _, r in scale] for scale in halves]

    def discriminate_for_generator(self, segmap, fake, real, training=True):
        """``discriminate`` as the generator's step needs it: (pred_fake, pred_real), the
        real predictions constants.

        The same numbers in two passes. D on the fake half (with its spectral-norm power
        iteration, as the official one batch of fake and real), then on the real half with
        the stored u, v that iteration has just written, so the same kernels (instance norm
        and the rest of D are per sample). The generator's gradient then runs back through
        the fake half alone: one batch of fake and real computed D's input gradient for the
        real images as well, to throw it away.
        """
        segmap = _conditions(segmap)["segmap"]
        pred_fake = as_scales(self.discriminator(
            {"segmap": segmap, "image": tf.cast(fake, real.dtype)}, training=training))
        pred_real = as_scales(self.discriminator({"segmap": segmap, "image": real}, training=False))
        return pred_fake, [[tf.stop_gradient(t) for t in scale] for scale in pred_real]

    def generator_losses(self, segmap, image, training=True):
        """Dict of the generator's loss terms, each as official (KLD summed over the batch)."""
        c = self.config
        fake, mean, logvar = self.generate(segmap, image, training)
        pred_fake, pred_real = self.discriminate_for_generator(segmap, fake, image, training)
        out = {"G_GAN": losses.gan_loss(pred_fake, True, for_discriminator=False, gan_mode=c.gan_mode)}
        if c.use_gan_feat_loss:
            out["G_GAN_Feat"] = losses.feature_matching_loss(pred_fake, pred_real, c.lambda_feat)
        if c.use_vgg_loss:
            out["G_VGG"] = losses.vgg_loss(self.vgg, tf.cast(fake, tf.float32), image, c.lambda_vgg)
        if c.use_vae:
            out["KLD"] = losses.kld_loss(mean, logvar, c.lambda_kld)
        return out

    def discriminator_losses(self, segmap, image, training=True):
        c = self.config
        fake, _, _ = self.generate(segmap, image, training)
        fake = tf.stop_gradient(fake)
        pred_fake, pred_real = self.discriminate(segmap, fake, image, training)
        return {
            "D_Fake": losses.gan_loss(pred_fake, False, True, c.gan_mode),
            "D_real": losses.gan_loss(pred_real, True, True, c.gan_mode),
        }

    # ----------------------------------------------------------- training
    def _apply(self, optimizer, scaled_loss, variables, tape):
        # scaled_loss = optimizer.scale_loss(loss), computed under the tape;
        # a LossScaleOptimizer unscales the gradients and skips non-finite ones.
        grads = tape.gradient(scaled_loss, variables)
        optimizer.apply(grads, variables)

    def generator_step(self, segmap, image):
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        with tf.GradientTape() as tape:
            terms = self.generator_losses(segmap, image, training=True)
            total = sum(v for k, v in terms.items() if k != "KLD") / replicas
            if "KLD" in terms:
                total = total + terms["KLD"]  # a sum over the batch: not divided
            scaled = self.g_optimizer.scale_loss(total)
        self._apply(self.g_optimizer, scaled, self.g_variables, tape)
        if "KLD" in terms:
            terms["KLD"] = terms["KLD"] * replicas  # replica mean of this = global sum
        return terms

    def discriminator_step(self, segmap, image):
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        with tf.GradientTape() as tape:
            terms = self.discriminator_losses(segmap, image, training=True)
            total = (terms["D_Fake"] + terms["D_real"]) / replicas
            scaled = self.d_optimizer.scale_loss(total)
        self._apply(self.d_optimizer, scaled, self.d_variables, tape)
        return terms

    def train_step(self, data):
        segmap = conditions_from_batch(data, self.config)
        image = tf.cast(data["image"], tf.float32)
        k = self.config.D_steps_per_G
        if k == 1:
            g_terms, g_weight = self.generator_step(segmap, image), 1.0
        else:
            ran_g = tf.equal(self.step % k, 0)
            names = [n for n in G_LOSSES if n in self.trackers]
            g_terms = tf.cond(
                ran_g,
                lambda: self.generator_step(segmap, image),
                lambda: {n: tf.constant(0.0) for n in names},
            )
            g_weight = tf.cast(ran_g, tf.float32)  # G terms count only when G ran
        d_terms = self.discriminator_step(segmap, image)
        self.step.assign_add(1)
        for name, value in g_terms.items():
            self.trackers[name].update_state(value, sample_weight=g_weight)
        for name, value in d_terms.items():
            self.trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def test_step(self, data):
        segmap = conditions_from_batch(data, self.config)
        image = tf.cast(data["image"], tf.float32)
        terms = {**self.generator_losses(segmap, image, False), **self.discriminator_losses(segmap, image, False)}
        for name, value in terms.items():
            self.trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self.trackers.items()}
