"""The processor base: training loop, resume, evaluation driver, logging and saving, written once.

``DPProcessor`` (this process: CPU, one GPU or DataParallel) and ``DDPProcessor`` (one process per GPU
under ``torchrun``) subclass it and differ only in what the hooks below do: device placement
(``_pick_device``), wrapping (``_wrap``, ``_prepare_model``), gathering (``_gather``, ``_gather_list``,
``_all_reduce``, ``_broadcast``), synchronisation (``_barrier``, ``_sync_for_eval``) and which rank
writes (``is_main``); both read data through the sharded ``EpochSampler`` (one shard with one process).

A run reads the YAML, builds the keypoint metadata, the model family's codec, data, the model (which
owns its loss), optimiser, schedule, AMP scaler and EMA, trains with a tqdm bar, evaluates every
``val.interval`` epochs (through ``processors.inference.Predictor``) and keeps
``<output_dir>/<model_name>/`` up to date: ``last.pth`` (every epoch, every ``optim.checkpoint_interval``
iterations / ``checkpoint_minutes`` and on Ctrl-C / SIGTERM, for ``resume: true``),
``best.pth`` (best AP), ``metrics.json``, ``curves.png``, ``train.log`` and the COCO results json of
the latest evaluation. With ``val.weight_path`` set it only evaluates those weights.
"""
import os
import signal
import sys
import time
from contextlib import contextmanager

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from datasets.coco import COCOKeypoints, DatasetError, load_coco
from datasets.draw import batch_picture, write_image
from datasets.image_io import ImageError
from datasets.keypoints import KeypointMeta
from decoders import build_codec
from nets import PretrainedWeightsError, build_model, load_pose_weights
from nets.detector import DetectorError

from .archive import archive_previous_run, prune_archives, restore_archive
from .checkpoint import (CheckpointError, load_resume_checkpoint, remove_stale_temporaries, save_checkpoint, save_json,
                         stored_config)
from .coco_eval import format_stats_table
from .config import load_config, validate
from .detections import detection_file
from .evaluator import drop_unscored, evaluate_predictions, predict, prediction_picture
from .inference import Predictor
from .interrupts import StopRequest, TrainingInterrupted
from .loaders import EpochSampler, init_loader_worker, with_synthetic_paths
from .optim import amp_dtype, build_ema, build_optimizer, grad_scaler
from .plots import save_curves
from .run_log import close_logger, log_traceback, make_logger, tensorboard
from .schedule import build_scheduler

# What a checkpoint fixes about its model: an evaluation-only run takes these from the checkpoint's stored
# configuration (section -> keys; None = the whole section but the initial-weight keys).
MODEL_SETTINGS = {"model": None, "keypoints": None, "loss": None,
                  "data": ("input_size", "heatmap_size", "sigma", "unbiased", "aspect_ratio", "padding", "warp",
                           "mean", "std", "channel_order"),
                  "decoder": ("coord_origin",)}
INITIAL_WEIGHTS = ("pretrained", "init_backbone", "init_weights")
MAX_NONFINITE_IN_A_ROW = 10
# Failures a user can act on: main.py prints their one-line message (the traceback goes to train.log).
EXPECTED_ERRORS = (DatasetError, ImageError, CheckpointError, PretrainedWeightsError, DetectorError,
                   FloatingPointError, torch.OutOfMemoryError)


class Processor:
    """Train / evaluate one experiment YAML; subclasses place it on devices and processes."""

    rank, world_size = 0, 1

    def __init__(self, cfg_path, opts=()):
        self.cfg = load_config(cfg_path, overrides=opts)
        self.out_dir = os.path.join(self.cfg.output_dir, self.cfg.model_name)
        self.history, self.best_ap, self.start_epoch = [], -1.0, 0
        self.log = self.tb = self.ema = None
        self.resume_point = None  # (iteration, partial epoch sums) of a checkpoint written inside an epoch
        self.stop_request, self.archived, self.saved, self.unscored = StopRequest(), None, False, 0
        self.last_save = time.time()  # of last.pth, for optim.checkpoint_minutes
        self.nonfinite_run = 0  # non-finite losses in a row

    @property
    def is_main(self):
        """Whether this process writes files and logs (rank 0)."""
        return self.rank == 0

    # ------------------------------------------------------------ the hooks
    def _pick_device(self):
        """The torch.device this process trains on (each solver decides: ``gpus``, or torchrun's LOCAL_RANK)."""
        raise NotImplementedError(f"{type(self).__name__} must say which device it uses")

    def _wrap(self, model):
        """The module the training step calls (DataParallel, DistributedDataParallel or the model)."""
        return model

    def _gather(self, pred):
        """Every rank's predictions on the main rank (None elsewhere)."""
        return pred

    def _gather_list(self, items):
        """The concatenation of every rank's list ``items``, on every rank."""
        return items

    def _all_reduce(self, values):
        """Sum of ``values`` (a list of floats) over the ranks."""
        return values

    def _broadcast(self, obj):
        """The main rank's ``obj`` on every rank."""
        return obj

    def _barrier(self):
        """Wait for every rank (one process: nothing to wait for)."""

    def _sync_for_eval(self, module):
        """Make ``module``'s weights and buffers the main rank's before an evaluation."""

    @contextmanager
    def _main_first(self):
        """Run the block on the main rank first, then on the others (shared files such as generated data)."""
        if not self.is_main:
            self._barrier()
        yield
        if self.is_main:
            self._barrier()

    # ----------------------------------------------------------------- set-up
    def _setup(self):
        cfg = self.cfg
        if self.is_main:
            os.makedirs(self.out_dir, exist_ok=True)
            stale = remove_stale_temporaries(self.out_dir)
            if not cfg.resume and not cfg.val.weight_path:
                self.archived = archive_previous_run(self.out_dir)
        self.log = make_logger(os.path.join(self.out_dir, "train.log") if self.is_main else None, self.rank)
        self.log.info(f"config {cfg.source} -> {self.out_dir}")
        if self.is_main and stale:
            self.log.info(f"removed {len(stale)} temporary files of interrupted writes: {', '.join(stale)}")
        torch.manual_seed(cfg.seed)
        self.device = self._pick_device()
        self.amp = cfg.optim.amp
        self.autocast = {"device_type": self.device.type, "dtype": amp_dtype(self.device), "enabled": self.amp}
        if self.amp:
            self.log.info(f"mixed precision: {str(self.autocast['dtype']).replace('torch.', '')} autocast on "
                          f"{self.device.type}{' with a GradScaler' if self.device.type == 'cuda' else ''}")
        if cfg.val.weight_path:
            self.cfg = cfg = self._checkpoint_settings(cfg)
        self.keypoints = KeypointMeta.from_config(cfg.keypoints)
        self.codec = build_codec(cfg, self.keypoints)
        self._setup_data()
        # Evaluation only: the weights to evaluate replace any initial ones (no ImageNet download).
        self.model = self._prepare_model(build_model(cfg.model, cfg.loss, initialise=not cfg.val.weight_path))
        self.model.to(self.device, memory_format=self.memory_format)
        self.log.info(f"model {cfg.model.type}/{cfg.model.name} ({self.codec.family}, {cfg.loss.type} loss, "
                      f"{self.keypoints.num_joints} keypoints): "
                      f"{sum(p.numel() for p in self.model.parameters()) / 1e6:.2f} M parameters on {self.device}")
        if cfg.val.weight_path:  # evaluation only: no training state
            self.net = self.model
            return
        self.optimizer = build_optimizer(self.model, cfg.optim)
        self.scheduler = build_scheduler(self.optimizer, len(self.train_loader), cfg.optim)
        self.scaler = grad_scaler(self.device, self.amp)
        if self.is_main:
            self.tb = tensorboard(os.path.join(self.out_dir, "tb"), self.log)
        if cfg.optim.ema:
            self.ema = build_ema(self.model, cfg.optim.ema_decay)
        self.net = self._wrap(self.model)
        if cfg.optim.compile:  # the wrapper is compiled (DDP splits the graph at its gradient buckets)
            self.log.info("optim.compile: torch.compile of the training model; the first steps compile it")
            self.net = torch.compile(self.net)

    @property
    def memory_format(self):
        return torch.channels_last if self.cfg.optim.channels_last else torch.contiguous_format

    def _prepare_model(self, model):
        """The model before it moves to the device (DDP: SyncBatchNorm)."""
        return model

    def _checkpoint_settings(self, cfg):
        """Evaluation only: the model, keypoint and input settings stored in a TopPose checkpoint win over the
        YAML's (a 128x96 model evaluated at 256x192 would score nothing); each difference is logged."""
        stored = stored_config(cfg.val.weight_path)
        if stored is None:
            return cfg
        values, changed = cfg.to_dict(), []
        for section, keys in MODEL_SETTINGS.items():
            theirs = stored.get(section) or {}
            for key in keys or [k for k in values[section] if k not in INITIAL_WEIGHTS]:
                if key in theirs and key in values[section] and theirs[key] != values[section][key]:
                    changed.append(f"{section}.{key} {theirs[key]} (YAML: {values[section][key]})")
                    values[section][key] = theirs[key]
        if changed:
            self.log.info(f"val.weight_path: using the settings the checkpoint was trained with: {'; '.join(changed)}")
        return validate(values, cfg.source, check_paths=False)

    def _setup_data(self):
        with self._main_first():  # generated data and detections are written once, by the main rank
            self.cfg = cfg = with_synthetic_paths(self.cfg, progress=self.is_main)
            d = cfg.data
            det_file = d.det_file if d.boxes == "file" else None
            if d.boxes == "detector":
                det_file = detection_file(cfg.detector, load_coco(d.val_ann), d.val_img_root, self.out_dir,
                                          device=str(self.device), log=self.log.info)
        pin = self.device.type == "cuda"
        self.boxes = {"mode": d.boxes, "det_file": det_file,
                      "detector": cfg.detector.to_dict() if d.boxes == "detector" else None}
        self.val_set = COCOKeypoints(d.val_ann, d.val_img_root, d, train=False, codec=self.codec,
                                     keypoints=self.keypoints, det_file=det_file)
        self.val_loader = DataLoader(self.val_set, batch_size=cfg.val.batch_size, num_workers=d.num_workers,
                                     sampler=EpochSampler(len(self.val_set), 0, self.rank, self.world_size, False),
                                     pin_memory=pin, worker_init_fn=init_loader_worker)
        self.log.info(f"validation: {len(self.val_set)} instances of {d.val_ann} ({self.boxes_label})")
        self._warn_missing(self.val_set, "not scored")
        if cfg.val.weight_path:
            return
        self.train_set = COCOKeypoints(d.train_ann, d.train_img_root, d, train=True, codec=self.codec,
                                       keypoints=self.keypoints, seed=cfg.seed)
        self.batch = d.batch_size // self.world_size
        sampler = EpochSampler(len(self.train_set), cfg.seed, self.rank, self.world_size, shuffle=True)
        self.train_loader = DataLoader(
            self.train_set, batch_size=self.batch, sampler=sampler, num_workers=d.num_workers, pin_memory=pin,
            drop_last=len(sampler) >= 2 * self.batch, worker_init_fn=init_loader_worker, persistent_workers=False)
        self.iters_per_epoch = len(self.train_loader)
        split = f" = {self.world_size} processes x {self.batch}" if self.world_size > 1 else ""
        self.log.info(f"training: {len(self.train_set)} instances of {d.train_ann}; batch {d.batch_size}{split}, "
                      f"{self.iters_per_epoch} iterations per epoch")
        self._warn_missing(self.train_set, "skipped")

    def _warn_missing(self, dataset, what):
        if dataset.problems:
            names = list(dataset.problems)
            self.log.warning(f"{len(names)} images of {dataset.ann_file} are missing, their instances {what}: "
                             f"{', '.join(names[:5])}{' ...' if len(names) > 5 else ''}")

    @property
    def boxes_label(self):
        """Which boxes the evaluation uses, for every printed and saved result."""
        if self.boxes["mode"] == "gt":
            return "boxes: ground truth"
        if self.boxes["mode"] == "file":
            return f"boxes: detection file {self.boxes['det_file']}"
        det = self.boxes["detector"]
        return f"boxes: detector {det['weights']} (conf {det['conf']}) -> {self.boxes['det_file']}"

    def _resume(self):
        """Every rank reads ``last.pth`` itself; the ranks must then agree on what they resumed."""
        path = os.path.join(self.out_dir, "last.pth")
        found = os.path.isfile(path)
        if found:
            ckpt = load_resume_checkpoint(path, self.cfg.to_dict()["model"])
            self.model.load_state_dict(ckpt["model"])
            self.optimizer.load_state_dict(ckpt["optimizer"])
            self.scheduler.load_state_dict(ckpt["scheduler"])
            self.scaler.load_state_dict(ckpt["scaler"])
            if self.ema is not None and ckpt.get("ema"):
                self.ema.load_state_dict(ckpt["ema"])
            self.start_epoch, self.best_ap, self.history = ckpt["epoch"], ckpt["best_ap"], ckpt["history"]
            if ckpt.get("iteration"):
                self.resume_point = (ckpt["iteration"], ckpt["partial"])
        state = [float(found), float(self.start_epoch), float(self.scheduler.last_epoch), self._optimizer_sum()]
        total = self._all_reduce(state)
        if any(abs(t - s * self.world_size) > 1e-6 * max(1.0, abs(t)) for s, t in zip(state, total)):
            raise RuntimeError(f"resume: the {self.world_size} processes did not resume the same state from {path} "
                               f"(rank {self.rank}: {'found' if found else 'missing'}, epoch {self.start_epoch}); with "
                               f"several machines output_dir must be a folder they all see")
        if not found:
            self.log.info(f"resume: true but {path} does not exist: starting from scratch")
            return
        ranks = f" on all {self.world_size} processes" if self.world_size > 1 else ""
        inside = (f", iteration {self.resume_point[0]}/{self.iters_per_epoch} of epoch {self.start_epoch + 1}"
                  if self.resume_point else "")
        self.log.info(f"resumed{ranks} from {path} after epoch {self.start_epoch}{inside}, best AP {self.best_ap:.4f}")

    def _optimizer_sum(self):
        """A fingerprint of the optimiser's state (sum of its tensors), to check that all ranks resumed it."""
        return float(sum(v.double().sum() for s in self.optimizer.state.values() for v in s.values()
                         if torch.is_tensor(v)))

    # ------------------------------------------------------------------- run
    def run(self):
        """Train (or only evaluate, with ``val.weight_path``); return the best evaluation stats."""
        try:
            self._setup()
            if self.cfg.val.weight_path:
                return self._evaluate_weights()
            return self._train()
        except TrainingInterrupted as e:
            self.log.info(str(e))
            raise
        except BaseException as e:
            if self.log is not None:
                log_traceback(self.log, f"stopped by {type(e).__name__}: {e}")
            raise
        finally:
            self._close()

    def _close(self):
        if self.tb is not None:
            self.tb.close()
        if self.log is not None:
            close_logger(self.log)
        if self.is_main and self.archived and not self.saved:
            restore_archive(self.archived, self.out_dir)

    def _evaluate_weights(self):
        load_pose_weights(self.model, self.cfg.val.weight_path)
        stats = self.evaluate(tag="weights")
        if self.is_main:
            save_json({"weight_path": self.cfg.val.weight_path, "boxes": self.boxes, "stats": stats,
                       "unscored": self.unscored}, os.path.join(self.out_dir, "eval_metrics.json"))
        return stats

    def _train(self):
        if self.cfg.resume:
            self._resume()
        epochs = self.cfg.optim.epochs
        started = self.last_save = time.time()
        with self.stop_request.listening():
            for epoch in range(self.start_epoch + 1, epochs + 1):  # 1-based, as printed
                t0 = time.time()
                loss, lr = self.train_one_epoch(epoch)
                record = {"epoch": epoch, "loss": loss, "lr": lr, "train_s": round(time.time() - t0, 1)}
                if epoch % self.cfg.val.interval == 0 or epoch == epochs:
                    record["stats"] = self.evaluate(tag=f"epoch {epoch}")
                    if self.tb is not None:
                        for name, value in record["stats"].items():
                            self.tb.add_scalar(f"val/{name}", value, epoch)
                        self.tb.flush()
                self.history.append(record)
                self._save(epoch, record)
                if self._all_reduce([float(self.stop_request.signum)])[0] and epoch < epochs:
                    self._stop(f"after epoch {epoch}")
        best = max((h for h in self.history if h.get("stats")), key=lambda h: h["stats"]["AP"], default=None)
        if best is not None:
            self.log.info(f"done in {time.time() - started:.0f} s; best AP {best['stats']['AP']:.4f} at epoch "
                          f"{best['epoch']}; weights in {self.out_dir}")
            self.log.info("best:\n" + format_stats_table(best["stats"]))
        return best["stats"] if best else None

    def _stop(self, where):
        raise TrainingInterrupted(f"{self.stop_request.name}: training stopped {where}; "
                                  f"{os.path.join(self.out_dir, 'last.pth')} holds it. To continue, set resume: true "
                                  f"in {self.cfg.source} and run again", self.stop_request.signum or signal.SIGTERM)

    def train_one_epoch(self, epoch):
        """One pass over the training set (``epoch`` counts from 1), or the rest of it after a resume inside
        the epoch; returns (mean loss, last lr used)."""
        self.net.train()
        start, partial = self.resume_point or (0, {"total": 0.0, "count": 0, "skipped_steps": 0, "bad_images": []})
        self.resume_point = None
        # Each sample's augmentation comes from (seed, epoch[, rank], index) and the order from (seed, epoch):
        # runs and resumes, even inside an epoch, see the same samples in the same order.
        self.train_set.set_epoch_seed([self.cfg.seed, epoch] + ([self.rank] if self.world_size > 1 else []))
        self.train_loader.sampler.set_epoch(epoch, start * self.batch)
        interactive = sys.stderr.isatty()
        bar = tqdm(self.train_loader, desc=f"epoch {epoch}/{self.cfg.optim.epochs}", disable=not self.is_main,
                   initial=start, total=self.iters_per_epoch, dynamic_ncols=True,
                   mininterval=0.5 if interactive else 30)
        total, count, skipped_steps = partial["total"], partial["count"], partial["skipped_steps"]
        bad_images = list(partial["bad_images"])
        lr = self.optimizer.param_groups[0]["lr"]
        for it, (images, target, weight, meta) in enumerate(bar, start):
            for problem in filter(None, meta["bad_image"]):
                if problem not in bad_images:
                    bad_images.append(problem)
                    self.log.warning(f"skipped: {problem}")
            # data.device_targets: the codec draws the heatmaps here, on the device, from the joints.
            target, weight = self.codec.batch_targets(target.to(self.device, non_blocking=True),
                                                      weight.to(self.device, non_blocking=True))
            if it == 0 and self.cfg.data.debug and self.is_main:
                self._debug_picture(images, target.cpu(), weight.cpu(), epoch)
            images = self.train_set.preprocess.normalize(images.to(self.device, non_blocking=True))
            images = images.contiguous(memory_format=self.memory_format)
            with torch.autocast(**self.autocast):
                loss = self.net(images, target, weight)["loss"].mean()  # DataParallel: one per GPU
            minutes = self.cfg.optim.checkpoint_minutes
            due = self.is_main and minutes > 0 and time.time() - self.last_save > 60 * minutes
            # One exchange per step keeps the processes in step: a non-finite loss, a stop request or a due
            # checkpoint on any of them acts on all of them.
            nonfinite, stop, due = (v > 0 for v in self._all_reduce(
                [float(not torch.isfinite(loss)), float(self.stop_request.signum), float(due)]))
            lr = self.optimizer.param_groups[0]["lr"]
            if nonfinite:
                self.nonfinite_run += 1
                self._nonfinite(loss, epoch, it, self.nonfinite_run)
                skipped_steps += 1
            else:
                self.nonfinite_run = 0
                self._step(loss)
                total += loss.item() * len(images)
                count += len(images)
            self.scheduler.step()
            if self.tb is not None and it % 20 == 0:
                step = (epoch - 1) * self.iters_per_epoch + it
                self.tb.add_scalar("train/loss", loss.item(), step)
                self.tb.add_scalar("train/lr", lr, step)
            bar.set_postfix(loss=f"{total / max(count, 1):.3e}", lr=f"{lr:.2e}", refresh=False)
            done, interval = it + 1, self.cfg.optim.checkpoint_interval
            if stop or due or (interval and done % interval == 0 and done < self.iters_per_epoch):
                self._save_progress(epoch, done, {"total": total, "count": count, "skipped_steps": skipped_steps,
                                                  "bad_images": bad_images})
            if stop:
                self._stop(f"at epoch {epoch}, iteration {done}/{self.iters_per_epoch}")
        bar.close()
        total, count, skipped_steps = self._all_reduce([total, float(count), float(skipped_steps)])
        bad_images = list(dict.fromkeys(self._gather_list(bad_images)))
        mean = total / max(count, 1)
        notes = "".join([f", {int(skipped_steps)} steps skipped (non-finite loss)" if skipped_steps else "",
                         f", {len(bad_images)} unreadable images skipped" if bad_images else ""])
        self.log.info(f"epoch {epoch}/{self.cfg.optim.epochs}: loss {mean:.4e}, lr {lr:.3e}, "
                      f"{bar.format_dict['elapsed']:.0f} s{notes}")
        return mean, lr

    def _step(self, loss):
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.cfg.optim.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.optim.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.ema is not None:
            self.ema.update_parameters(self.model)

    def _nonfinite(self, loss, epoch, it, in_a_row):
        """A NaN / Inf loss (on some process): stop, or with ``optim.skip_nonfinite`` skip the step."""
        where = f"at epoch {epoch}, iteration {it}"
        if not self.cfg.optim.skip_nonfinite or in_a_row >= MAX_NONFINITE_IN_A_ROW:
            streak = f" ({in_a_row} steps in a row)" if in_a_row > 1 else ""
            raise FloatingPointError(
                f"loss is {loss.item()} {where}{streak}: training stopped; "
                f"{os.path.join(self.out_dir, 'last.pth')} holds the last good checkpoint. Lower optim.lr, "
                f"set optim.grad_clip or check the data, then resume.")
        self.log.warning(f"loss is {loss.item()} {where}: step skipped (optim.skip_nonfinite)")

    def _debug_picture(self, images, target, weight, epoch):
        """data.debug: the first training batch of the epoch with the joints its targets encode."""
        kps = self.codec.target_joints(target, weight)
        path = os.path.join(self.out_dir, f"debug_train_epoch{epoch}.jpg")
        write_image(path, batch_picture(images, kps.numpy(), keypoints=self.keypoints))

    def evaluate(self, tag="eval"):
        """COCO keypoint evaluation of the current (or EMA) weights on the validation set; every rank predicts
        its share, the main rank scores them all. Returns the stats on every rank."""
        cfg = self.cfg
        model = self.ema.module if self.ema is not None else self.model
        self._sync_for_eval(model)
        t0 = time.time()
        predictor = Predictor(self._eval_module(model), self.codec, self.keypoints, self.val_set.preprocess,
                              unbiased=cfg.data.unbiased, flip_test=cfg.decoder.flip_test, device=self.device,
                              amp=self.amp, batch_size=cfg.val.batch_size, in_vis_thresh=cfg.val.in_vis_thresh)
        pred = self._gather(predict(predictor, self.val_loader, desc=f"eval {tag}", progress=self.is_main))
        stats = None
        if self.is_main:
            scored, problems = drop_unscored(pred)
            self.unscored = len(pred["indices"]) - len(scored["indices"])
            if problems:
                self.log.warning(f"{self.unscored} instances not scored, their images unusable: "
                                 f"{'; '.join(problems[:3])}{' ...' if len(problems) > 3 else ''}")
            pred = scored
            stats, results = evaluate_predictions(pred, self.val_set.coco, cfg.val, self.keypoints,
                                                  results_path=os.path.join(self.out_dir, "val_results.json"))
            picture = prediction_picture(self.val_set.coco, cfg.data.val_img_root, results, self.keypoints)
            if picture is not None:
                write_image(os.path.join(self.out_dir, "val_preview.jpg"), picture)
            unscored = f", {self.unscored} not scored" if self.unscored else ""
            self.log.info(f"evaluation ({tag}, {self.boxes_label}, {time.time() - t0:.0f} s, "
                          f"{len(pred['image_ids'])} instances{unscored}):\n" + format_stats_table(stats))
        return self._broadcast(stats)

    def _eval_module(self, model):
        """The module the ``Predictor`` calls for ``model`` (DataParallel spreads evaluation too)."""
        return model

    def _save(self, epoch, record):
        """End of an epoch: ``best.pth`` on a better AP, ``last.pth``, metrics and curves (main rank)."""
        if not self.is_main:
            return
        model = self.ema.module if self.ema is not None else self.model
        if record.get("stats") and record["stats"]["AP"] > self.best_ap:
            self.best_ap = record["stats"]["AP"]
            save_checkpoint({"model": model.state_dict(), "epoch": epoch, "stats": record["stats"],
                             "config": self.cfg.to_dict()}, os.path.join(self.out_dir, "best.pth"))
        self._save_last(epoch, 0, None)
        save_json({"model_name": self.cfg.model_name, "boxes": self.boxes, "best_ap": self.best_ap,
                   "history": self.history}, os.path.join(self.out_dir, "metrics.json"))
        save_curves(self.history, os.path.join(self.out_dir, "curves.png"))

    def _save_progress(self, epoch, iteration, partial):
        """Inside epoch ``epoch``: ``last.pth`` after ``iteration`` steps, with the epoch's partial sums."""
        if self.is_main:
            self._save_last(epoch - 1, iteration, partial)
            self.log.info(f"checkpoint at epoch {epoch}, iteration {iteration}/{self.iters_per_epoch}")

    def _save_last(self, epochs_done, iteration, partial):
        save_checkpoint({
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "epoch": epochs_done, "iteration": iteration, "partial": partial,
            "best_ap": self.best_ap, "history": self.history, "config": self.cfg.to_dict(),
        }, os.path.join(self.out_dir, "last.pth"))
        self.last_save = time.time()
        if not self.saved:
            self.saved = True
            pruned = prune_archives(self.out_dir, self.cfg.keep_archives)
            if pruned:
                self.log.info(f"keep_archives {self.cfg.keep_archives}: deleted the archived runs {', '.join(pruned)}")
