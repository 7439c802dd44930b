"""Pictures of a replayed run: one PNG per tick and an animated GIF, drawn by the world itself.

A world plugin that can draw itself has ``draw(world, ax)`` (``world_reports.Draws``); the engine
adds the tick's name (``tick_name``) and metrics as a title (the world's ``picture_metrics``
when it names them).
matplotlib runs headless (Agg), so this works on a cluster node without a display.
"""

from __future__ import annotations

from pathlib import Path

from agora.engine.replay import Replayer, ReplayError
from agora.engine.world_reports import Draws, picture_metrics, tick_name


def write_frames(
    replayer: Replayer, out_dir: Path, *, last_tick: int, seconds_per_frame: float = 0.5
) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    plugin = replayer.world_plugin
    if not isinstance(plugin, Draws):
        raise ReplayError(f"the world {replayer.logged.header.world!r} cannot draw itself")
    shown = picture_metrics(plugin)
    out_dir.mkdir(parents=True, exist_ok=True)
    frames: list[Path] = []
    while replayer.tick < last_tick:
        record = replayer.step()
        figure, ax = plt.subplots(figsize=(5, 5.4), dpi=100)
        plugin.draw(replayer.world, ax)
        scalars = {
            k: v
            for k, v in record.metrics.items()
            if isinstance(v, int | float) and (shown is None or k in shown)
        }
        detail = "  ".join(f"{k} {v:.3f}" for k, v in scalars.items())
        ax.set_title(f"{tick_name(plugin, record.tick)}   {detail}", fontsize=12)
        path = out_dir / f"tick_{record.tick:05d}.png"
        figure.savefig(path, bbox_inches="tight")
        plt.close(figure)
        frames.append(path)
    if frames:
        images = [Image.open(path).convert("P", palette=Image.Palette.ADAPTIVE) for path in frames]
        images[0].save(
            out_dir / "run.gif",
            save_all=True,
            append_images=images[1:],
            duration=int(seconds_per_frame * 1000),
            loop=0,
        )
    return frames
