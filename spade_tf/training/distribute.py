"""Choosing the tf.distribute strategy."""

import json
import os

import tensorflow as tf


def cluster_workers() -> list:
    """Addresses of the training tasks ``TF_CONFIG`` names: its chief, if any, then its workers.

    MultiWorkerMirroredStrategy trains on both kinds ("chief" is worker 0
    under another name).
    """
    try:
        tf_config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
    except json.JSONDecodeError as e:
        raise ValueError(f"TF_CONFIG is not valid JSON: {e}") from None
    cluster = tf_config.get("cluster", {})
    return list(cluster.get("chief", [])) + list(cluster.get("worker", []))


def get_strategy() -> tf.distribute.Strategy:
    """MultiWorkerMirroredStrategy when ``TF_CONFIG`` names several workers,
    MirroredStrategy when several GPUs are visible, else the default strategy.

    Call it before any other TensorFlow op: MultiWorkerMirroredStrategy
    configures collective ops, which TensorFlow only allows at startup.
    """
    if len(cluster_workers()) > 1:
        return tf.distribute.MultiWorkerMirroredStrategy()
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def worker_info(strategy: tf.distribute.Strategy) -> tuple[bool, int]:
    """(is_chief, task_id) of this process.

    The chief is the "chief" task when the cluster has one, else worker 0
    (TensorFlow's rule, ``multi_worker_util.is_chief``).
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True, 0
    task_id = resolver.task_id or 0
    if resolver.task_type == "chief":
        return True, task_id
    has_chief = "chief" in resolver.cluster_spec().jobs
    return resolver.task_type == "worker" and task_id == 0 and not has_chief, task_id
