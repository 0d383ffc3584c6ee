"""Single-process solver: train on CPU, one GPU or several through DataParallel; evaluate with COCOeval.

``DPProcessor(cfg_path).run()`` reads the YAML, builds the keypoint metadata, the model family's
codec, data, the model (which owns its loss), optimiser and schedule, trains with a tqdm bar,
evaluates every ``val.interval`` epochs (through ``processors.inference.Predictor``) and keeps
``<output_dir>/<model_name>/`` up to date: ``last.pth`` (every epoch, for ``resume: true``),
``best.pth`` (best AP), ``metrics.json``, ``curves.png``, ``train.log`` and the COCO results
json of the latest evaluation. With ``val.weight_path`` set it only evaluates those weights.
"""
import logging
import os
import shutil
import sys
import time

import cv2
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, get_worker_info
from tqdm import tqdm

from datasets.coco import COCOKeypoints, load_coco
from datasets.draw import batch_picture, write_image
from datasets.keypoints import KeypointMeta
from decoders import build_codec
from nets import build_model, load_pose_weights

from .checkpoint import load_checkpoint, save_checkpoint, save_json, stored_config
from .coco_eval import format_stats_table
from .config import ConfigError, load_config, validate, with_overrides
from .detections import detection_file
from .evaluator import evaluate_predictions, predict, prediction_picture
from .inference import Predictor
from .plots import save_curves
from .schedule import build_scheduler

# What a checkpoint fixes about its model: an evaluation-only run takes these from the checkpoint's stored
# configuration (section -> keys; None = the whole section but the initial-weight keys).
MODEL_SETTINGS = {"model": None, "keypoints": None, "loss": None,
                  "data": ("input_size", "heatmap_size", "sigma", "unbiased", "aspect_ratio", "padding", "warp",
                           "mean", "std", "channel_order"),
                  "decoder": ("coord_origin",)}
INITIAL_WEIGHTS = ("pretrained", "init_backbone", "init_weights")

OPTIMIZERS = {
    "adam": lambda params, o: torch.optim.Adam(params, lr=o.lr, weight_decay=o.weight_decay),
    "adamw": lambda params, o: torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay),
    "sgd": lambda params, o: torch.optim.SGD(params, lr=o.lr, momentum=o.momentum,
                                             weight_decay=o.weight_decay, nesterov=False),
}


def init_loader_worker(_):
    """DataLoader worker: its own augmentation stream, and no OpenCV thread pool (one per worker
    process already fills the cores; nested pools oversubscribe them)."""
    cv2.setNumThreads(0)
    info = get_worker_info()
    info.dataset.set_epoch_seed(info.seed % 2 ** 63)


def _tensorboard(folder, log):
    """A TensorBoard SummaryWriter, or None (with a note) when tensorboard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as e:
        log.info(f"TensorBoard logging off ({e})")
        return None
    return SummaryWriter(folder)


def make_logger(log_path):
    """Logger writing to stdout and to ``log_path``."""
    logger = logging.getLogger(f"toppose.{log_path}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    if not logger.handlers:
        fmt = logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S")
        for handler in (logging.StreamHandler(sys.stdout), logging.FileHandler(log_path)):
            handler.setFormatter(fmt)
            logger.addHandler(handler)
    return logger


class DPProcessor:
    """Train / evaluate one experiment YAML in this process (DataParallel over ``gpus``)."""

    def __init__(self, cfg_path):
        self.cfg = load_config(cfg_path)
        if self.cfg.optim.sync_bn:
            raise ConfigError(f"{cfg_path}: key 'optim.sync_bn': SyncBatchNorm needs several processes; "
                              f"use DDPProcessor under torchrun, or set it to false")
        self.out_dir = os.path.join(self.cfg.output_dir, self.cfg.model_name)
        self.history, self.best_ap, self.start_epoch = [], -1.0, 0

    # ----------------------------------------------------------------- set-up
    def _setup(self):
        cfg = self.cfg
        os.makedirs(self.out_dir, exist_ok=True)
        if not cfg.resume and not cfg.val.weight_path:
            self._archive_previous_run()
        self.log = make_logger(os.path.join(self.out_dir, "train.log"))
        self.log.info(f"config {cfg.source} -> {self.out_dir}")
        torch.manual_seed(cfg.seed)
        self.device = self._pick_device()
        self.amp = cfg.optim.amp and self.device.type == "cuda"
        if cfg.optim.amp and not self.amp:
            self.log.info("optim.amp is on but there is no CUDA device: training in float32")
        if cfg.val.weight_path:
            self.cfg = cfg = self._checkpoint_settings(cfg)
        self.keypoints = KeypointMeta.from_config(cfg.keypoints)
        self.codec = build_codec(cfg, self.keypoints)
        self._setup_data()
        # Evaluation only: the weights to evaluate replace any initial ones (no ImageNet download).
        self.model = build_model(cfg.model, cfg.loss, initialise=not cfg.val.weight_path).to(self.device)
        self.net = self.model
        if self.device.type == "cuda" and len(cfg.gpus) > 1:
            self.net = torch.nn.DataParallel(self.model, device_ids=cfg.gpus)
        self.log.info(f"model {cfg.model.type}/{cfg.model.name} ({self.codec.family}, {cfg.loss.type} loss, "
                      f"{self.keypoints.num_joints} keypoints): "
                      f"{sum(p.numel() for p in self.model.parameters()) / 1e6:.2f} M parameters on {self.device}"
                      f"{f' (DataParallel over GPUs {cfg.gpus})' if self.net is not self.model else ''}")
        self.ema = None
        if cfg.val.weight_path:  # evaluation only: no training state
            return
        self.optimizer = OPTIMIZERS[cfg.optim.optimizer](self.model.parameters(), cfg.optim)
        self.scheduler = build_scheduler(self.optimizer, len(self.train_loader), cfg.optim)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.tb = _tensorboard(os.path.join(self.out_dir, "tb"), self.log)
        if cfg.optim.ema:
            self.ema = AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(cfg.optim.ema_decay),
                                     use_buffers=True)

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

    def _pick_device(self):
        gpus = self.cfg.gpus
        if gpus and torch.cuda.is_available():
            if max(gpus) >= torch.cuda.device_count():
                raise ConfigError(f"{self.cfg.source}: key 'gpus': GPU {max(gpus)} requested, "
                                  f"{torch.cuda.device_count()} visible")
            return torch.device("cuda", gpus[0])
        if gpus:
            self.log.info(f"gpus {gpus} requested but CUDA is not available: running on the CPU")
        return torch.device("cpu")

    def _setup_data(self):
        cfg = self.cfg
        if cfg.data.use_synthetic:
            from datasets.synthetic import make_synthetic_coco
            syn = cfg.data.synthetic
            paths = make_synthetic_coco(syn.root, num_train=syn.num_train, num_val=syn.num_val,
                                        image_size=tuple(syn.image_size[::-1]), seed=syn.seed)
            self.cfg = cfg = with_overrides(cfg, data={
                "train_ann": paths["train_ann"], "train_img_root": paths["train_images"],
                "val_ann": paths["val_ann"], "val_img_root": paths["val_images"]})
        d = cfg.data
        pin = self.device.type == "cuda"
        det_file = d.det_file if d.boxes == "file" else None
        if d.boxes == "detector":
            det_file = detection_file(cfg.detector, load_coco(d.val_ann), d.val_img_root, self.out_dir,
                                      device=str(self.device), log=self.log.info)
        self.boxes = {"mode": d.boxes, "det_file": det_file,
                      "detector": cfg.detector.to_dict() if d.boxes == "detector" else None}
        self.val_set = COCOKeypoints(d.val_ann, d.val_img_root, d, train=False, codec=self.codec,
                                     keypoints=self.keypoints, det_file=det_file)
        self.val_loader = DataLoader(self.val_set, batch_size=cfg.val.batch_size, shuffle=False,
                                     num_workers=d.num_workers, pin_memory=pin)
        self.log.info(f"validation: {len(self.val_set)} instances of {d.val_ann} ({self.boxes_label})")
        if cfg.val.weight_path:
            return
        self.train_set = COCOKeypoints(d.train_ann, d.train_img_root, d, train=True, codec=self.codec,
                                       keypoints=self.keypoints, seed=cfg.seed)
        self.loader_gen = torch.Generator()
        self.train_loader = DataLoader(
            self.train_set, batch_size=d.batch_size, shuffle=True, num_workers=d.num_workers,
            pin_memory=pin, drop_last=len(self.train_set) >= 2 * d.batch_size,
            generator=self.loader_gen, worker_init_fn=init_loader_worker, persistent_workers=False)
        self.log.info(f"training: {len(self.train_set)} instances of {d.train_ann}")

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
        names = [n for n in ("last.pth", "best.pth", "metrics.json", "curves.png", "train.log",
                             "val_results.json", "val_preview.jpg", "tb") if os.path.exists(os.path.join(self.out_dir, n))]
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
        path = os.path.join(self.out_dir, "last.pth")
        if not os.path.isfile(path):
            self.log.info(f"resume: true but {path} does not exist: starting from scratch")
            return
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
        self.log.info(f"resumed from {path} after epoch {self.start_epoch}, best AP {self.best_ap:.4f}")

    # ------------------------------------------------------------------- run
    def run(self):
        """Train (or only evaluate, with ``val.weight_path``); return the best evaluation stats."""
        self._setup()
        if self.cfg.val.weight_path:
            load_pose_weights(self.model, self.cfg.val.weight_path)
            stats = self.evaluate(tag="weights")
            save_json({"weight_path": self.cfg.val.weight_path, "boxes": self.boxes, "stats": stats},
                      os.path.join(self.out_dir, "eval_metrics.json"))
            return stats
        if self.cfg.resume:
            self._resume()
        epochs, best = self.cfg.optim.epochs, None
        started = time.time()
        for epoch in range(self.start_epoch + 1, epochs + 1):  # 1-based, as printed
            t0 = time.time()
            loss, lr = self.train_one_epoch(epoch)
            record = {"epoch": epoch, "loss": loss, "lr": lr,
                      "train_s": round(time.time() - t0, 1)}
            if epoch % self.cfg.val.interval == 0 or epoch == epochs:
                record["stats"] = self.evaluate(tag=f"epoch {epoch}")
                if self.tb is not None:
                    for name, value in record["stats"].items():
                        self.tb.add_scalar(f"val/{name}", value, epoch)
                    self.tb.flush()
            self.history.append(record)
            self._save(epoch, record)
        if self.tb is not None:
            self.tb.close()
        best = max((h for h in self.history if h.get("stats")), key=lambda h: h["stats"]["AP"], default=None)
        if best is not None:
            self.log.info(f"done in {time.time() - started:.0f} s; best AP {best['stats']['AP']:.4f} at epoch "
                          f"{best['epoch']}; weights in {self.out_dir}")
            self.log.info("best:\n" + format_stats_table(best["stats"]))
        return best["stats"] if best else None

    def train_one_epoch(self, epoch):
        """One pass over the training set (``epoch`` counts from 1); returns (mean loss, last lr used)."""
        self.net.train()
        self.train_set.set_epoch_seed([self.cfg.seed, epoch])
        self.loader_gen.manual_seed(self.cfg.seed * 1000003 + epoch)
        interactive = sys.stderr.isatty()
        bar = tqdm(self.train_loader, desc=f"epoch {epoch}/{self.cfg.optim.epochs}",
                   dynamic_ncols=True, mininterval=0.5 if interactive else 30)
        total, count = 0.0, 0
        for it, (images, target, weight, _) in enumerate(bar):
            if it == 0 and self.cfg.data.debug:
                self._debug_picture(images, target, weight, epoch)
            images = self.train_set.preprocess.normalize(images.to(self.device, non_blocking=True))
            target = target.to(self.device, non_blocking=True)
            weight = weight.to(self.device, non_blocking=True)
            with torch.autocast(device_type=self.device.type, enabled=self.amp):
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
        """COCO keypoint evaluation of the current (or EMA) weights on the validation set."""
        cfg = self.cfg
        model = self.ema.module if self.ema is not None else self.net
        t0 = time.time()
        predictor = Predictor(model, self.codec, self.keypoints, self.val_set.preprocess,
                              unbiased=cfg.data.unbiased,
                              flip_test=cfg.decoder.flip_test, device=self.device, amp=self.amp,
                              batch_size=cfg.val.batch_size, in_vis_thresh=cfg.val.in_vis_thresh)
        pred = predict(predictor, self.val_loader, desc=f"eval {tag}")
        stats, results = evaluate_predictions(pred, self.val_set.coco, cfg.val, self.keypoints,
                                              results_path=os.path.join(self.out_dir, "val_results.json"))
        picture = prediction_picture(self.val_set.coco, cfg.data.val_img_root, results, self.keypoints)
        if picture is not None:
            write_image(os.path.join(self.out_dir, "val_preview.jpg"), picture)
        self.log.info(f"evaluation ({tag}, {self.boxes_label}, {time.time() - t0:.0f} s, "
                      f"{len(pred['image_ids'])} instances):\n" + format_stats_table(stats))
        return stats

    def _save(self, epoch, record):
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
