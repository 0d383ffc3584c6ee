"""Previous runs kept aside: ``resume: false`` moves a run's files under ``archive/<time>/``; a start that never
wrote a checkpoint puts them back; ``keep_archives`` bounds how many are kept."""
import os
import shutil
import time

RUN_FILES = ("last.pth", "best.pth", "metrics.json", "curves.png", "train.log", "val_results.json",
             "val_preview.jpg", "tb")


def archive_previous_run(out_dir):
    """Move a previous run's files of ``out_dir`` to ``out_dir/archive/<time>/``; returns that folder, or None
    when there was nothing to move."""
    names = [n for n in RUN_FILES if os.path.exists(os.path.join(out_dir, n))]
    if not names:
        return None
    stamp = time.strftime("%Y%m%d-%H%M%S")
    dest = os.path.join(out_dir, "archive", stamp)
    for n in range(1, 1000):
        if not os.path.exists(dest):
            break
        dest = os.path.join(out_dir, "archive", f"{stamp}-{n}")
    os.makedirs(dest)
    for n in names:
        shutil.move(os.path.join(out_dir, n), os.path.join(dest, n))
    print(f"resume is false: the previous run's files were moved to {dest}")
    return dest


def restore_archive(archived, out_dir):
    """Put the files of ``archived`` back into ``out_dir`` (a start that never wrote a checkpoint); the previous
    run's log gets the lines of this start appended."""
    for name in os.listdir(archived):
        old, new = os.path.join(archived, name), os.path.join(out_dir, name)
        if name == "train.log" and os.path.isfile(new):
            with open(old, "a", encoding="utf-8") as log, open(new, encoding="utf-8") as latest:
                log.write(latest.read())
        if os.path.isdir(new):
            shutil.rmtree(new)
        elif os.path.exists(new):
            os.remove(new)
        shutil.move(old, new)
    os.rmdir(archived)
    if not os.listdir(os.path.dirname(archived)):
        os.rmdir(os.path.dirname(archived))
    print(f"no checkpoint was written: the previous run's files are back in {out_dir}")


def prune_archives(out_dir, keep):
    """Delete all but the newest ``keep`` archived runs of ``out_dir`` (0 keeps all); returns the deleted names."""
    folder = os.path.join(out_dir, "archive")
    if not keep or not os.path.isdir(folder):
        return []
    old = sorted(os.listdir(folder))[:-keep]
    for name in old:
        shutil.rmtree(os.path.join(folder, name))
    return old
