"""The city as a picture: districts as squares on their grid, shaded by density."""

from __future__ import annotations

import math
from typing import Any

from agora.worlds.schelling_city.world import SchellingCity


def draw_city(city: SchellingCity, ax: Any) -> None:
    from matplotlib import colormaps
    from matplotlib.colors import Normalize
    from matplotlib.patches import Rectangle

    districts = len(city.populations)
    columns = math.isqrt(districts) if math.isqrt(districts) ** 2 == districts else districts
    rows = math.ceil(districts / columns)
    shade = colormaps["RdYlGn_r"]
    # Green at the optimum (half full), red towards empty or full: distance from ½.
    norm = Normalize(vmin=0.0, vmax=0.5)
    for index, population in enumerate(city.populations):
        row, column = divmod(index, columns)
        density = int(population) / city.capacity
        ax.add_patch(
            Rectangle(
                (column, rows - 1 - row),
                0.95,
                0.95,
                facecolor=shade(norm(abs(density - 0.5))),
                edgecolor="black",
                linewidth=1,
            )
        )
        ax.text(
            column + 0.475,
            rows - 1 - row + 0.475,
            f"D{index + 1}\n{int(population)}\n{density:.2f}",
            ha="center",
            va="center",
            fontsize=11,
        )
    ax.set_xlim(-0.05, columns)
    ax.set_ylim(-0.05, rows)
    ax.set_aspect("equal")
    ax.axis("off")
