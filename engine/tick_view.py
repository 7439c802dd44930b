"""One tick of a replayed run as text: the world, the board, each decision with its reasoning."""

from __future__ import annotations

import msgspec

from agora.engine.replay import Replayer
from agora.engine.world_reports import RendersState


def render_tick(replayer: Replayer, tick: int, agents: set[int]) -> str:
    _, record = replayer.logged.ticks[tick]
    lines = [f"Tick {tick} of {replayer.logged.path} (state digest {record.digest}, matches)", ""]
    prompts = replayer.prompts
    if isinstance(prompts, RendersState):
        lines += [prompts.render_state(), ""]
    scalars = {k: v for k, v in record.metrics.items() if isinstance(v, int | float)}
    lines.append("  ".join(f"{k} {v:g}" for k, v in scalars.items()))
    for policy in replayer.policies:
        lines += ["", policy.render(policy.view(-1, tick + 1))]
    # The tick's records of the kinds the world and the policies declare, as the log holds them.
    made = {kind: len(ticks.get(tick, ())) for kind, ticks in replayer.logged.records.items()}
    if made:
        lines += ["", "Records: " + ", ".join(f"{k} {n}" for k, n in sorted(made.items()))]
    decisions = [
        d for d in replayer.logged.decisions.get(tick, []) if not agents or d.agent in agents
    ]
    lines += ["", f"Decisions ({len(decisions)}):"]
    for decision in sorted(decisions, key=lambda d: d.agent):
        if decision.valid:
            action = msgspec.json.encode(decision.action).decode()
            facts = ", ".join(f"{k} {v}" for k, v in decision.info.items() if k != "notes")
            lines.append(f"- agent {decision.agent}: {action} ({facts})")
            lines.append(f"    {decision.reasoning}")
        else:
            why = decision.error or decision.invalid_reason
            lines.append(f"- agent {decision.agent}: no action ({why})")
            lines.append(f"    raw: {decision.raw[:200]!r}")
    return "\n".join(lines)
