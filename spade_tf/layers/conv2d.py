"""2D convolution with PyTorch padding semantics and optional spectral norm."""

import keras
from keras import ops

from spade_tf.layers.initializers import fresh_initializer, get_initializer


def _l2_normalize(x, eps):
    # torch.nn.functional.normalize: x / max(||x||, eps)
    return x / ops.maximum(ops.sqrt(ops.sum(ops.square(x))), eps)


@keras.saving.register_keras_serializable(package="spade_tf")
class Conv2D(keras.layers.Layer):
    """Conv layer that pads like PyTorch and can spectral-normalize its kernel.

    Why not ``keras.layers.Conv2D``: TF's ``padding="same"`` with stride 2 pads
    asymmetrically (more at the end), PyTorch's ``padding=p`` pads ``p`` on
    every side; the official discriminator and encoder use stride 2, so their
    outputs and checkpoints only line up with explicit symmetric padding.

    Why not ``keras.layers.SpectralNormalization``: it overwrites the kernel
    with ``W / sigma`` and does not differentiate through sigma. This layer
    keeps the raw kernel (PyTorch's ``weight_orig``) and both power-iteration
    vectors ``u`` (out,) and ``v`` (in * kh * kw,) exactly as
    ``torch.nn.utils.spectral_norm`` stores them, so official checkpoints map
    one-to-one:
      * training: one power iteration (under ``stop_gradient``) updates u, v;
        then ``sigma = u . (W v)`` with gradients through W, kernel = W / sigma;
      * inference: no iteration; the stored u, v give sigma (PyTorch eval).
    ``folded_kernel()`` returns the inference kernel, for export.

    Args:
        filters: output channels.
        kernel_size: int, square kernel.
        strides: int.
        padding: int, zeros added on every side (PyTorch ``padding``).
        use_bias: whether to add a bias.
        spectral_norm: whether to spectral-normalize the kernel.
        kernel_initializer: initializer; default official Xavier(gain=0.02).
        eps: spectral-norm epsilon (PyTorch 1e-12).

    Call args:
        inputs: [B, H, W, C_in].
        training: whether to run a power iteration and update u, v.

    Returns:
        [B, H', W', filters] with ``H' = (H + 2p - k) // s + 1``.
    """

    def __init__(
        self,
        filters,
        kernel_size,
        strides=1,
        padding=0,
        use_bias=True,
        spectral_norm=False,
        kernel_initializer=None,
        eps=1e-12,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value, low in (
            ("filters", filters, 1), ("kernel_size", kernel_size, 1),
            ("strides", strides, 1), ("padding", padding, 0),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name}={value!r} is not valid; expected an integer >= {low}.")
        self.filters = filters
        self.kernel_size = kernel_size
        self.strides = strides
        self.padding = padding
        self.use_bias = use_bias
        self.spectral_norm = spectral_norm
        self.kernel_initializer = keras.initializers.get(
            kernel_initializer or get_initializer()
        )
        self.eps = eps

    def build(self, input_shape):
        in_channels = input_shape[-1]
        if in_channels is None:
            raise ValueError(f"{self.name}: the input's channel dimension must be known.")
        k = self.kernel_size
        # autocast=False: spectral norm is computed in float32 under mixed
        # precision, then the kernel is cast to the compute dtype.
        self.kernel = self.add_weight(
            name="kernel", shape=(k, k, in_channels, self.filters),
            initializer=fresh_initializer(self.kernel_initializer), autocast=False,
        )
        self.bias = (
            self.add_weight(name="bias", shape=(self.filters,), initializer="zeros")
            if self.use_bias else None
        )
        if self.spectral_norm:
            def unit_normal(shape, dtype=None):
                return _l2_normalize(keras.random.normal(shape, dtype=dtype), self.eps)

            # "mean": under tf.distribute every replica computes the same
            # update (same W, same u); mean keeps the mirrored copies equal.
            self.u = self.add_weight(
                name="u", shape=(self.filters,), initializer=unit_normal,
                trainable=False, autocast=False, aggregation="mean",
            )
            self.v = self.add_weight(
                name="v", shape=(k * k * in_channels,), initializer=unit_normal,
                trainable=False, autocast=False, aggregation="mean",
            )

    # PyTorch's weight matrix is the OIHW kernel reshaped to (out, in*kh*kw),
    # and v is in that (in, kh, kw) order. Transposing the HWIO kernel into it
    # on every call cost more than the power iteration itself; instead the
    # kernel is only reshaped to (kh*kw*in, out) and the small vector v is
    # permuted between the two orders: the same products and sums, so the
    # same sigma, u and v up to float rounding.
    def _v_to_hwi(self, v):
        k, cin = self.kernel_size, self.kernel.shape[2]
        return ops.reshape(ops.transpose(ops.reshape(v, (cin, k, k)), (1, 2, 0)), (-1,))

    def _v_from_hwi(self, v_hwi):
        k, cin = self.kernel_size, self.kernel.shape[2]
        return ops.reshape(ops.transpose(ops.reshape(v_hwi, (k, k, cin)), (2, 0, 1)), (-1,))

    def _sigma(self, w_hwio, u, v):
        # u . (W v) with W v = w_hwio^T v_hwi
        return ops.sum(u * ops.matmul(self._v_to_hwi(v), w_hwio))

    def folded_kernel(self):
        """Inference kernel: the raw one, or ``W / sigma`` with stored u, v."""
        kernel = ops.convert_to_tensor(self.kernel)
        if not self.spectral_norm:
            return kernel
        w_hwio = ops.reshape(kernel, (-1, self.filters))
        return kernel / self._sigma(w_hwio, ops.convert_to_tensor(self.u), ops.convert_to_tensor(self.v))

    def call(self, inputs, training=None):
        kernel = ops.convert_to_tensor(self.kernel)
        if self.spectral_norm:
            w_hwio = ops.reshape(kernel, (-1, self.filters))
            u = ops.convert_to_tensor(self.u)
            v = ops.convert_to_tensor(self.v)
            if training:
                w_fixed = ops.stop_gradient(w_hwio)
                # v = normalize(W^T u), u = normalize(W v), as torch's spectral_norm
                v = _l2_normalize(self._v_from_hwi(ops.matmul(w_fixed, u)), self.eps)
                u = _l2_normalize(ops.matmul(self._v_to_hwi(v), w_fixed), self.eps)
                self.u.assign(u)
                self.v.assign(v)
            kernel = kernel / self._sigma(w_hwio, u, v)
        kernel = ops.cast(kernel, self.compute_dtype)
        k, p, s = self.kernel_size, self.padding, self.strides
        if s == 1 and k % 2 == 1 and 2 * p == k - 1:
            # Symmetric, so "same" is exactly PyTorch's padding (and fuses).
            outputs = ops.conv(inputs, kernel, strides=1, padding="same")
        else:
            if p:
                inputs = ops.pad(inputs, [[0, 0], [p, p], [p, p], [0, 0]])
            outputs = ops.conv(inputs, kernel, strides=s, padding="valid")
        if self.use_bias:
            outputs = outputs + ops.cast(self.bias, self.compute_dtype)
        return outputs

    def compute_output_shape(self, input_shape):
        def size(n):
            if n is None:
                return None
            return (n + 2 * self.padding - self.kernel_size) // self.strides + 1

        return (input_shape[0], size(input_shape[1]), size(input_shape[2]), self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            kernel_size=self.kernel_size,
            strides=self.strides,
            padding=self.padding,
            use_bias=self.use_bias,
            spectral_norm=self.spectral_norm,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            eps=self.eps,
        )
        return config
