"""The set-up every training script shares: threads, seed, the run folder and its train.log."""

import os
import time

import torch


def start_run(out, threads, seed):
    """Sets torch's threads and seed, makes `out`, and returns log(msg): a timestamped line to
    stdout and to out/train.log (appended, so a resumed run keeps its history)."""
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    os.makedirs(out, exist_ok=True)
    log_file = open(os.path.join(out, "train.log"), "a")

    def log(msg):
        line = f"[{time.strftime('%H:%M:%S')}] {msg}"
        print(line, flush=True)
        log_file.write(line + "\n")
        log_file.flush()

    return log
