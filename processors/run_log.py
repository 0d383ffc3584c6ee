"""A run's log: ``train.log`` beside the weights and the console, one logger per run, closed at its end."""
import itertools
import logging
import sys

_RUNS = itertools.count()


def make_logger(log_path=None, rank=0):
    """A fresh logger for one run: INFO to stdout and to ``log_path`` (rank 0), or only warnings to stderr
    with a ``[rank r]`` prefix (the other ranks of a distributed run, ``log_path`` None).

    Each call makes a new logger, so a second run in the same process never writes into the first run's
    file (which may have been archived since); ``close_logger`` releases its files."""
    logger = logging.getLogger(f"toppose.run{next(_RUNS)}")
    logger.propagate = False
    if log_path is None:
        logger.setLevel(logging.WARNING)
        handlers = [(logging.StreamHandler(sys.stderr), f"%(asctime)s [rank {rank}] %(message)s")]
    else:
        logger.setLevel(logging.INFO)
        handlers = [(logging.StreamHandler(sys.stdout), "%(asctime)s %(message)s"),
                    (logging.FileHandler(log_path), "%(asctime)s %(message)s")]
    for handler, fmt in handlers:
        handler.setFormatter(logging.Formatter(fmt, "%Y-%m-%d %H:%M:%S"))
        logger.addHandler(handler)
    return logger


def close_logger(logger):
    """Flush and close the handlers of a ``make_logger`` logger."""
    for handler in list(logger.handlers):
        handler.close()
        logger.removeHandler(handler)


def tensorboard(folder, log):
    """A TensorBoard SummaryWriter, or None (with a note) when tensorboard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as e:
        log.info(f"TensorBoard logging off ({e})")
        return None
    return SummaryWriter(folder)


def log_traceback(logger, message):
    """``message`` and the traceback of the exception being handled, into the log file only (the console gets
    the one-line message ``main.py`` prints)."""
    record = logger.makeRecord(logger.name, logging.ERROR, __file__, 0, message, None, sys.exc_info())
    for handler in logger.handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)
