"""The processor base: training loop, resume, evaluation driver, logging and saving, written once.

``DPProcessor`` (this process: CPU, one GPU or DataParallel) and ``DDPProcessor`` (one process per GPU
under ``torchrun``) subclass it and differ only in what the hooks below do: device placement
(``_pick_device``), wrapping (``_wrap``), samplers (``_sampler``), gathering (``_gather``,
``_all_reduce``, ``_broadcast``), synchronisation (``_barrier``, ``_sync_for_eval``) and which rank
writes (``is_main``).

A run reads the YAML, builds the keypoint metadata, the model family's codec, data, the model (which
owns its loss), optimiser, schedule, AMP scaler and EMA, trains with a tqdm bar, evaluates every
``val.interval`` epochs (through ``processors.inference.Predictor``) and keeps
``<output_dir>/<model_name>/`` up to date: ``last.pth`` (every epoch, for ``resume: true``),
``best.pth`` (best AP), ``metrics.json``, ``curves.png``, ``train.log`` and the COCO results json of
the latest evaluation. With ``val.weight_path`` set it only evaluates those weights.
"""
import os
import shutil
import sys
import time
from contextlib import contextmanager

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from datasets.coco import COCOKeypoints, load_coco
from datasets.draw import batch_picture, write_image
from datasets.keypoints import KeypointMeta
from decoders import build_codec
from nets import build_model, load_pose_weights

from .checkpoint import load_checkpoint, save_checkpoint, save_json, stored_config
from .coco_eval import format_stats_table
from .config import ConfigError, load_config, validate
from .detections import detection_file
from .evaluator import evaluate_predictions, predict, prediction_picture
from .inference import Predictor
from .loaders import init_loader_worker, with_synthetic_paths
from .optim import amp_dtype, build_ema, build_optimizer, grad_scaler
from .plots import save_curves
from .run_log import close_logger, make_logger, tensorboard
from .schedule import build_scheduler

# What a checkpoint fixes about its model: an evaluation-only run takes these from the checkpoint's stored
# configuration (section -> keys; None = the whole section but the initial-weight keys).
MODEL_SETTINGS = {"model": None, "keypoints": None, "loss": None,
                  "data": ("input_size", "heatmap_size", "sigma", "unbiased", "aspect_ratio", "padding", "warp",
                           "mean", "std", "channel_order"),
                  "decoder": ("coord_origin",)}
INITIAL_WEIGHTS = ("pretrained", "init_backbone", "init_weights")
RUN_FILES = ("last.pth", "best.pth", "metrics.json", "curves.png", "train.log", "val_results.json",
             "val_preview.jpg", "tb")


class Processor:
    """Train / evaluate one experiment YAML; subclasses place it on devices and processes."""

    rank, world_size = 0, 1

    def __init__(self, cfg_path):
        self.cfg = load_config(cfg_path)
        self.out_dir = os.path.join(self.cfg.output_dir, self.cfg.model_name)
        self.history, self.best_ap, self.start_epoch = [], -1.0, 0
        self.log = self.tb = self.ema = None

    @property
    def is_main(self):
        """Whether this process writes files and logs (rank 0)."""
        return self.rank == 0

    # ------------------------------------------------------------ the hooks
    def _pick_device(self):
        raise NotImplementedError

    def _wrap(self, model):
        """The module the training step calls (DataParallel, DistributedDataParallel or the model)."""
        return model

    def _sampler(self, dataset, train):
        """A sampler of ``dataset`` (None: the loader shuffles training data itself)."""
        return None

    def _gather(self, pred):
        """Every rank's predictions on the main rank (None elsewhere)."""
        return pred

    def _all_reduce(self, values):
        """Sum of ``values`` (a list of floats) over the ranks."""
        return values

    def _broadcast(self, obj):
        """The main rank's ``obj`` on every rank."""
        return obj

    def _barrier(self):
        pass

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
            if not cfg.resume and not cfg.val.weight_path:
                self._archive_previous_run()
        self.log = make_logger(os.path.join(self.out_dir, "train.log") if self.is_main else None, self.rank)
        self.log.info(f"config {cfg.source} -> {self.out_dir}")
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
        self.val_loader = DataLoader(self.val_set, batch_size=cfg.val.batch_size, shuffle=False,
                                     sampler=self._sampler(self.val_set, train=False),
                                     num_workers=d.num_workers, pin_memory=pin)
        self.log.info(f"validation: {len(self.val_set)} instances of {d.val_ann} ({self.boxes_label})")
        if cfg.val.weight_path:
            return
        self.train_set = COCOKeypoints(d.train_ann, d.train_img_root, d, train=True, codec=self.codec,
                                       keypoints=self.keypoints, seed=cfg.seed)
        self.loader_gen = torch.Generator()
        sampler = self._sampler(self.train_set, train=True)
        batch = d.batch_size // self.world_size
        per_rank = len(sampler) if sampler is not None else len(self.train_set)
        self.train_loader = DataLoader(
            self.train_set, batch_size=batch, shuffle=sampler is None, sampler=sampler,
            num_workers=d.num_workers, pin_memory=pin, drop_last=per_rank >= 2 * batch,
            generator=self.loader_gen, worker_init_fn=init_loader_worker, persistent_workers=False)
        split = f" = {self.world_size} processes x {batch}" if self.world_size > 1 else ""
        self.log.info(f"training: {len(self.train_set)} instances of {d.train_ann}; batch {d.batch_size}{split}, "
                      f"{len(self.train_loader)} iterations per epoch")

    @property
    def boxes_label(self):
        """Which boxes the evaluation uses, for every printed and saved result."""
        if self.boxes["mode"] == "gt":
            return "boxes: ground truth"
        if self.boxes["mode"] == "file":
            return f"boxes: detection file {self.boxes['det_file']}"
        det = self.boxes["detector"]
        return f"boxes: detector {det['weights']} (conf {det['conf']}) -> {self.boxes['det_file']}"

    def _archive_previous_run(self):
        """Keep a previous run's files (resume is off) under archive/<time>/ instead of overwriting."""
        names = [n for n in RUN_FILES if os.path.exists(os.path.join(self.out_dir, n))]
        if not names:
            return
        stamp = time.strftime("%Y%m%d-%H%M%S")
        dest = os.path.join(self.out_dir, "archive", stamp)
        for n in range(1, 1000):
            if not os.path.exists(dest):
                break
            dest = os.path.join(self.out_dir, "archive", f"{stamp}-{n}")
        os.makedirs(dest)
        for n in names:
            shutil.move(os.path.join(self.out_dir, n), os.path.join(dest, n))
        print(f"resume is false: the previous run's files were moved to {dest}")

    def _resume(self):
        """Every rank reads ``last.pth`` itself; the ranks must then agree on what they resumed."""
        path = os.path.join(self.out_dir, "last.pth")
        found = os.path.isfile(path)
        if found:
            ckpt = load_checkpoint(path)
            if ckpt["config"]["model"] != self.cfg.to_dict()["model"]:
                raise ConfigError(f"{self.cfg.source}: key 'model': differs from the model of {path} "
                                  f"({ckpt['config']['model']}); resume needs the same model")
            self.model.load_state_dict(ckpt["model"])
            self.optimizer.load_state_dict(ckpt["optimizer"])
            self.scheduler.load_state_dict(ckpt["scheduler"])
            self.scaler.load_state_dict(ckpt["scaler"])
            if self.ema is not None and ckpt.get("ema"):
                self.ema.load_state_dict(ckpt["ema"])
            self.start_epoch, self.best_ap, self.history = ckpt["epoch"], ckpt["best_ap"], ckpt["history"]
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
        self.log.info(f"resumed{ranks} from {path} after epoch {self.start_epoch}, best AP {self.best_ap:.4f}")

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
        finally:
            self._close()

    def _close(self):
        if self.tb is not None:
            self.tb.close()
        if self.log is not None:
            close_logger(self.log)

    def _evaluate_weights(self):
        load_pose_weights(self.model, self.cfg.val.weight_path)
        stats = self.evaluate(tag="weights")
        if self.is_main:
            save_json({"weight_path": self.cfg.val.weight_path, "boxes": self.boxes, "stats": stats},
                      os.path.join(self.out_dir, "eval_metrics.json"))
        return stats

    def _train(self):
        if self.cfg.resume:
            self._resume()
        epochs = self.cfg.optim.epochs
        started = time.time()
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
        best = max((h for h in self.history if h.get("stats")), key=lambda h: h["stats"]["AP"], default=None)
        if best is not None:
            self.log.info(f"done in {time.time() - started:.0f} s; best AP {best['stats']['AP']:.4f} at epoch "
                          f"{best['epoch']}; weights in {self.out_dir}")
            self.log.info("best:\n" + format_stats_table(best["stats"]))
        return best["stats"] if best else None

    def train_one_epoch(self, epoch):
        """One pass over the training set (``epoch`` counts from 1); returns (mean loss, last lr used)."""
        self.net.train()
        # Augmentation and shuffling streams per epoch (and per rank): runs and resumes are reproducible.
        rank_seed = [self.rank] if self.world_size > 1 else []
        self.train_set.set_epoch_seed([self.cfg.seed, epoch] + rank_seed)
        self.loader_gen.manual_seed(self.cfg.seed * 1000003 + epoch + 7919 * self.rank)
        if hasattr(self.train_loader.sampler, "set_epoch"):
            self.train_loader.sampler.set_epoch(epoch)
        interactive = sys.stderr.isatty()
        bar = tqdm(self.train_loader, desc=f"epoch {epoch}/{self.cfg.optim.epochs}", disable=not self.is_main,
                   dynamic_ncols=True, mininterval=0.5 if interactive else 30)
        total, count, lr = 0.0, 0, self.optimizer.param_groups[0]["lr"]
        for it, (images, target, weight, _) in enumerate(bar):
            if it == 0 and self.cfg.data.debug and self.is_main:
                self._debug_picture(images, target, weight, epoch)
            images = self.train_set.preprocess.normalize(images.to(self.device, non_blocking=True))
            images = images.contiguous(memory_format=self.memory_format)
            target = target.to(self.device, non_blocking=True)
            weight = weight.to(self.device, non_blocking=True)
            with torch.autocast(**self.autocast):
                loss = self.net(images, target, weight)["loss"].mean()  # DataParallel: one per GPU
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"loss is {loss.item()} at epoch {epoch}, iteration {it}: training stopped; "
                    f"{os.path.join(self.out_dir, 'last.pth')} holds the last good epoch. Lower optim.lr, "
                    f"set optim.grad_clip or check the data, then resume.")
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if self.cfg.optim.grad_clip > 0:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.optim.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            lr = self.optimizer.param_groups[0]["lr"]
            self.scheduler.step()
            if self.ema is not None:
                self.ema.update_parameters(self.model)
            total += loss.item() * len(images)
            count += len(images)
            if self.tb is not None and it % 20 == 0:
                step = (epoch - 1) * len(self.train_loader) + it
                self.tb.add_scalar("train/loss", loss.item(), step)
                self.tb.add_scalar("train/lr", lr, step)
            bar.set_postfix(loss=f"{total / count:.3e}", lr=f"{lr:.2e}", refresh=False)
        bar.close()
        total, count = self._all_reduce([total, float(count)])
        mean = total / max(count, 1)
        self.log.info(f"epoch {epoch}/{self.cfg.optim.epochs}: loss {mean:.4e}, lr {lr:.3e}, "
                      f"{bar.format_dict['elapsed']:.0f} s")
        return mean, lr

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
            stats, results = evaluate_predictions(pred, self.val_set.coco, cfg.val, self.keypoints,
                                                  results_path=os.path.join(self.out_dir, "val_results.json"))
            picture = prediction_picture(self.val_set.coco, cfg.data.val_img_root, results, self.keypoints)
            if picture is not None:
                write_image(os.path.join(self.out_dir, "val_preview.jpg"), picture)
            self.log.info(f"evaluation ({tag}, {self.boxes_label}, {time.time() - t0:.0f} s, "
                          f"{len(pred['image_ids'])} instances):\n" + format_stats_table(stats))
        return self._broadcast(stats)

    def _eval_module(self, model):
        """The module the ``Predictor`` calls for ``model`` (DataParallel spreads evaluation too)."""
        return model

    def _save(self, epoch, record):
        if not self.is_main:
            return
        model = self.ema.module if self.ema is not None else self.model
        if record.get("stats") and record["stats"]["AP"] > self.best_ap:
            self.best_ap = record["stats"]["AP"]
            save_checkpoint({"model": model.state_dict(), "epoch": epoch, "stats": record["stats"],
                             "config": self.cfg.to_dict()}, os.path.join(self.out_dir, "best.pth"))
        save_checkpoint({
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "epoch": epoch, "best_ap": self.best_ap, "history": self.history, "config": self.cfg.to_dict(),
        }, os.path.join(self.out_dir, "last.pth"))
        save_json({"model_name": self.cfg.model_name, "boxes": self.boxes, "best_ap": self.best_ap,
                   "history": self.history}, os.path.join(self.out_dir, "metrics.json"))
        save_curves(self.history, os.path.join(self.out_dir, "curves.png"))
