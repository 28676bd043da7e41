"""The two-layer net trained data-parallel by tf.distribute's MultiWorkerMirroredStrategy.

W processes, one per entry of the cluster in TF_CONFIG, each take their own N/W rows of the
batch. Each step's loss and gradients are all-reduced with one batched SUM collective (the
lecture's loss is a sum over rows), and every worker applies the same update to its own
copy of w1, w2, so the copies stay equal as DDP's do.

Run alone, one process:  python -m implementations.tensorflow_multiworker
compare.py --workers W starts W workers on 127.0.0.1, each with its TF_CONFIG (docs/data-parallel.md: across
machines, the same command on each with that machine's TF_CONFIG).
"""

from __future__ import annotations

import json
import os
import time

from common import data
from common.config import RunConfig
from common.problem import Problem, Start, place
from common.timing import Trainer, median
from implementations import tf_data, tf_support
from implementations.tensorflow_graphs import forward_loss
from implementations.tf_support import tf

COMM_REPEATS = 20
SUM = tf.distribute.ReduceOp.SUM


# --- the network and loss: tensorflow_graphs.py's forward_loss, on this worker's rows ----------

# --- the step of each variant -----------------------------------------------------------------

def build_multiworker(cfg: RunConfig, start: Start) -> Trainer:
    strategy = start.device
    # Plain variables, one copy per worker, created outside strategy.scope(): every worker
    # applies the same summed gradient, so no variable syncing is needed (or paid for).
    w1, w2 = tf.Variable(start.w1, name="w1"), tf.Variable(start.w2, name="w2")
    lr = tf.constant(cfg.lr, dtype=w1.dtype)

    def replica_step(x=start.x, y=start.y):  # minibatch mode passes this worker's rows of each batch
        with tf.GradientTape() as tape:
            local_loss = forward_loss(x, y, w1, w2)  # over this worker's rows only
        grad_w1, grad_w2 = tape.gradient(local_loss, [w1, w2])
        # One batched collective: the batch's loss and gradients, summed over the workers
        loss, grad_w1, grad_w2 = tf.distribute.get_replica_context().all_reduce(SUM, [local_loss, grad_w1, grad_w2])
        w1.assign_sub(lr * grad_w1)
        w2.assign_sub(lr * grad_w2)
        return loss

    @tf.function
    def train_step(*batch):
        return strategy.run(replica_step, args=batch)

    return Trainer(lambda *batch: strategy.experimental_local_results(train_step(*batch))[0].numpy(),
                   weights=lambda: (w1.numpy(), w2.numpy()))


BUILDERS = {"multiworker": build_multiworker}


# --- the strategy: one per run, its collective timed alone -------------------------------------

def make_strategy(cfg: RunConfig, device: str) -> tf.distribute.MultiWorkerMirroredStrategy:
    """The strategy of the cluster in TF_CONFIG (none: this process alone)."""
    cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {}).get("worker", [None])
    if len(cluster) != cfg.workers:
        raise RuntimeError(f"TF_CONFIG names {len(cluster)} worker(s) but --workers is {cfg.workers}")
    if device.startswith("/GPU"):
        local = sum(address.startswith(("127.0.0.1:", "localhost:")) for address in cluster if address)
        if local > len(tf.config.list_physical_devices("GPU")):  # NCCL: one worker per GPU
            raise NotImplementedError(f"{local} workers on this machine need as many GPUs; it has "
                                      f"{len(tf.config.list_physical_devices('GPU'))}")
        implementation = tf.distribute.experimental.CommunicationImplementation.NCCL
    else:
        implementation = tf.distribute.experimental.CommunicationImplementation.RING
    options = tf.distribute.experimental.CommunicationOptions(implementation=implementation)
    return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)


def time_collectives(problem: Problem, strategy) -> float:
    """Median time of one step's collective alone: the same batched all-reduce on zeros."""
    grads = [tf.zeros((), problem.x.dtype), tf.zeros(problem.w1.shape, problem.x.dtype),
             tf.zeros(problem.w2.shape, problem.x.dtype)]

    @tf.function
    def collective():
        return strategy.run(lambda: tf.distribute.get_replica_context().all_reduce(SUM, grads))

    collective()  # traced and the collective's group formed outside the timing
    times = []
    for _ in range(COMM_REPEATS):
        start = time.perf_counter_ns()
        strategy.experimental_local_results(collective()[0])[0].numpy()
        times.append((time.perf_counter_ns() - start) * 1e-9)
    return median(times)


# --- the feed (minibatch mode) ----------------------------------------------------------------

def distributed_feed(cfg: RunConfig, problem: Problem, strategy):
    """A distributed dataset: each worker's input pipeline (tf_data.pipeline) reads its own rows of
    every batch of the shared order, so the workers' rows together are the reference's batch."""

    def worker_pipeline(context: tf.distribute.InputContext) -> tf.data.Dataset:
        return tf_data.pipeline(cfg, problem, order=data.worker_order(cfg, context.input_pipeline_id))

    batches = strategy.distribute_datasets_from_function(worker_pipeline)
    return lambda: iter(batches)


# --- build ------------------------------------------------------------------------------------

def build(cfg: RunConfig, problem: Problem, variant: str) -> Trainer:
    tf_support.set_threads(cfg.worker_threads)  # first: TF fixes its pools when the strategy starts its server
    device = tf_support.device(cfg)
    strategy = make_strategy(cfg, device)
    rank = strategy.cluster_resolver.task_id or 0
    mine = data.worker_rows(cfg, rank)  # this worker's rows of the batch
    start = place(cfg, problem._replace(x=problem.x[mine], y=problem.y[mine]), strategy, tf.constant)
    trainer = BUILDERS[variant](cfg, start)
    if cfg.minibatch:
        trainer = trainer._replace(feed=distributed_feed(cfg, problem, strategy))
    return trainer._replace(sync=tf_support.sync(device), reports=rank == 0,
                            collectives=lambda: time_collectives(problem, strategy),
                            note=f"MultiWorkerMirroredStrategy, {cfg.workers} worker(s) x "
                                 f"{cfg.worker_threads} thread(s)")


if __name__ == "__main__":
    from implementations.standalone import main

    main("tensorflow", build)
