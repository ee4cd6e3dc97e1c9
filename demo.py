"""Generator demo: writes label map | generated | reference PNGs.

    python demo.py --out=demo_out
"""

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("out", "demo_out", "Directory for the PNGs.")
flags.DEFINE_integer("seed", 0, "First scene number.")
flags.DEFINE_integer("num_images", 2, "How many scenes.", lower_bound=1)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    from spade_tf.demo import run_demo  # after flag parsing: TF import is slow

    for path in run_demo(FLAGS.out, seed=FLAGS.seed, num_images=FLAGS.num_images):
        print(f"wrote {path}  (label map | generated | reference)")


if __name__ == "__main__":
    app.run(main)
