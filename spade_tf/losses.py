"""SPADE losses, as NVlabs ``models/networks/loss.py`` and ``pix2pix_model.py``.

All take discriminator outputs in the layout ``build_discriminator`` returns:
a list over scales, each a list of feature maps whose last is the logits.
``keras.ops`` only.
"""

from keras import ops

from spade_tf.config import GAN_MODES

VGG_LAYER_WEIGHTS = (1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0)


def _logits(predictions):
    """Last feature map of each scale (accepts a single tensor too)."""
    if not isinstance(predictions, (list, tuple)):
        return [predictions]
    return [p[-1] if isinstance(p, (list, tuple)) else p for p in predictions]


def _single_gan_loss(logits, target_is_real, for_discriminator, gan_mode):
    x = ops.cast(logits, "float32")
    if gan_mode == "hinge":
        if for_discriminator:
            if target_is_real:
                return -ops.mean(ops.minimum(x - 1.0, 0.0))
            return -ops.mean(ops.minimum(-x - 1.0, 0.0))
        if not target_is_real:
            raise ValueError("The generator's hinge loss must aim for real (target_is_real=True).")
        return -ops.mean(x)
    target = 1.0 if target_is_real else 0.0
    if gan_mode == "ls":
        return ops.mean(ops.square(x - target))
    if gan_mode == "original":
        # Numerically stable BCE with logits, as F.binary_cross_entropy_with_logits.
        return ops.mean(ops.maximum(x, 0.0) - x * target + ops.log1p(ops.exp(-ops.abs(x))))
    raise ValueError(f"gan_mode={gan_mode!r} is not valid; expected one of {list(GAN_MODES)}.")


def gan_loss(predictions, target_is_real: bool, for_discriminator: bool = True, gan_mode: str = "hinge"):
    """Adversarial loss averaged over discriminator scales.

    Hinge (default): D real ``-mean(min(x - 1, 0))``, D fake
    ``-mean(min(-x - 1, 0))``, G ``-mean(x)``. "ls": mean squared error to
    1 / 0. "original": binary cross-entropy with logits.

    Args:
        predictions: discriminator output (list of scales) or one logits tensor.
        target_is_real: whether the images should be judged real.
        for_discriminator: D loss (True) or G loss (False; matters for hinge).
        gan_mode: "hinge", "ls" or "original".

    Returns:
        Scalar float32 loss.
    """
    logits = _logits(predictions)
    total = 0.0
    for x in logits:
        total = total + _single_gan_loss(x, target_is_real, for_discriminator, gan_mode)
    return total / len(logits)


def feature_matching_loss(pred_fake, pred_real, lambda_feat: float = 10.0):
    """Discriminator feature matching (pix2pixHD), as official.

    Sum over scales and intermediate layers (the logits excluded) of
    ``mean(|fake - real|)``, times ``lambda_feat / num_D``; real features are
    treated as constants.
    """
    num_d = len(pred_fake)
    total = 0.0
    for fake_scale, real_scale in zip(pred_fake, pred_real):
        for fake, real in zip(fake_scale[:-1], real_scale[:-1]):
            diff = ops.cast(fake, "float32") - ops.stop_gradient(ops.cast(real, "float32"))
            total = total + ops.mean(ops.abs(diff)) * (lambda_feat / num_d)
    return total


def vgg_loss(vgg, fake_image, real_image, lambda_vgg: float = 10.0):
    """VGG19 perceptual loss: ``lambda * sum_i w_i * mean|vgg_i(fake) - vgg_i(real)|``.

    Weights 1/32, 1/16, 1/8, 1/4, 1 on relu1_1..relu5_1; real features are
    constants. ``vgg`` is a ``VGG19Features`` (see ``models.vgg19``).
    """
    fake_features = vgg(fake_image)
    real_features = vgg(real_image)
    total = 0.0
    for w, f, r in zip(VGG_LAYER_WEIGHTS, fake_features, real_features):
        diff = ops.cast(f, "float32") - ops.stop_gradient(ops.cast(r, "float32"))
        total = total + w * ops.mean(ops.abs(diff))
    return total * lambda_vgg


def kld_loss(mean, logvar, lambda_kld: float = 0.05):
    """KL(N(mean, exp(logvar)) || N(0, I)), summed over batch and dims (official)."""
    mean = ops.cast(mean, "float32")
    logvar = ops.cast(logvar, "float32")
    return -0.5 * ops.sum(1.0 + logvar - ops.square(mean) - ops.exp(logvar)) * lambda_kld
