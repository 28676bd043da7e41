"""The tf.data input pipeline shared by the TensorFlow and Keras implementations.

The shared shuffle order (common.data.batch_order) is the dataset's elements; each element's
rows are gathered from the host copy of x, y (copy, prefetch) or from the memory-mapped
.npy files (disk). Prefetch adds parallel gathers and a buffer filled while the step runs.
"""

from __future__ import annotations

from common import data
from common.config import RunConfig
from common.problem import Problem
from implementations.tf_support import tf


def pipeline(cfg: RunConfig, problem: Problem, order=None) -> tf.data.Dataset:
    """One element per step: that step's (x, y) batch, in the shared order, on the host.
    `order`: each step's rows (default the whole batch; a data-parallel worker passes its own)."""
    order = data.batch_order(cfg) if order is None else order
    rows = tf.data.Dataset.from_tensor_slices(order)
    if cfg.feed == "disk":
        x_map, y_map = data.host_source(cfg, problem)

        def read(rows):  # a memory map is no tensor: NumPy gathers from it inside the pipeline
            x, y = tf.numpy_function(lambda r: data.gather(x_map, y_map, r), [rows], (x_map.dtype, y_map.dtype))
            return tf.ensure_shape(x, (order.shape[1], cfg.d_in)), tf.ensure_shape(y, (order.shape[1], cfg.d_out))
    else:
        with tf.device("/CPU:0"):
            x_host, y_host = tf.constant(problem.x), tf.constant(problem.y)

        def read(rows):
            return tf.gather(x_host, rows), tf.gather(y_host, rows)

    if cfg.feed == "prefetch":
        return rows.map(read, num_parallel_calls=cfg.loader_workers).prefetch(tf.data.AUTOTUNE)
    return rows.map(read)
