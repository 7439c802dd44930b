"""The persona record both ProSim worlds log once, with tick 0, so analyses read each agent's
demographics and scores beside its answers (``agora.load_run(...).of("prosim_persona")``)."""

from __future__ import annotations

from agora.engine.records import AgentId, LogRecord
from agora.worlds.prosim.personas import Persona


class ProSimPersona(LogRecord, tag="prosim_persona"):
    tick: int
    agent: AgentId
    participant: str
    source: str
    gender: str
    age: str
    marital: str
    occupation: str
    education: str
    income: int
    prosociality: float
    empathic_concern: float
    moral_identity: float
    social_responsibility: float
    altruistic_tendency: float
    agreeableness: float
    conscientiousness: float
    neuroticism: float
    openness: float
    extraversion: float


def persona_record(agent: AgentId, persona: Persona, source: str) -> ProSimPersona:
    s = persona.scores
    return ProSimPersona(
        tick=0,
        agent=agent,
        participant=persona.participant,
        source=source,
        gender=persona.gender,
        age=persona.age,
        marital=persona.marital,
        occupation=persona.occupation,
        education=persona.education,
        income=persona.income,
        prosociality=round(persona.prosociality, 4),
        empathic_concern=s["empathic_concern"],
        moral_identity=s["moral_identity"],
        social_responsibility=s["social_responsibility"],
        altruistic_tendency=s["altruistic_tendency"],
        agreeableness=s["agreeableness"],
        conscientiousness=s["conscientiousness"],
        neuroticism=s["neuroticism"],
        openness=s["openness"],
        extraversion=s["extraversion"],
    )
