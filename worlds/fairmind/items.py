"""The questionnaires of FairMindSim's personas: item texts of Appendix B (Tables 8–11 of the
seed paper, ``../shared/seeds/003_*.txt``), verbatim, and how each scale is scored.

The seed lists every item of the four scales (CES-D 20, ERS 21, AQ 28, JSI-observer 10) but
not their response formats. Those are fixed here so that Table 1's means fall inside each
scale's range with little clipping (the persona generator clips to the range):

- CES-D: 1 (rarely or none of the time) … 4 (most or all of the time), total 20–80. The usual
  0–3 scoring would put Table 1's mean of 35.4 above the clinical cut-off for most of the
  cohort; 1–4 (as the authors' earlier code scored its 20-item depression scale) does not.
- ERS: 1 (not at all like me) … 5 (completely like me), total 21–105. Its usual 0–4 scoring
  (0–84) would clip about a tenth of a Table-1 population at the ceiling.
- AQ: the 28-item short form, each item 1–4, keyed so a higher total means more
  autistic-like traits, total 28–112 (the authors' code: a 4-point agreement scale).
- JSI-observer: 0 (not at all) … 5 (exactly), total 0–50, as the inventory is usually scored.

Item-level data imported from a CSV are taken as keyed item scores (reverse-keyed items
already reversed, as survey exports usually hold them) and summed.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Scale:
    """One questionnaire: its column name in a persona CSV, words, items and scoring, and
    the moments of Table 1 (the human cohort, N = 1,017) the generator draws from."""

    key: str
    name: str
    measures: str
    items: tuple[str, ...]
    item_min: int
    item_max: int
    anchors: str
    mean: float
    sd: float

    @property
    def low(self) -> int:
        return self.item_min * len(self.items)

    @property
    def high(self) -> int:
        return self.item_max * len(self.items)

    def item_column(self, number: int) -> str:
        """The CSV column of item ``number`` (1-based): ``aq_1`` … ``aq_28``."""
        return f"{self.key}_{number}"


CESD_ITEMS = (
    "I was bothered by things that usually don’t bother me.",
    "I did not feel like eating; my appetite was poor.",
    "I felt that I could not shake off the blues even with help from my family or friends.",
    "I felt that I was just as good as other people.",
    "I had trouble keeping my mind on what I was doing.",
    "I felt depressed.",
    "I felt that everything I did was an effort.",
    "I felt hopeful about the future.",
    "I thought my life had been a failure.",
    "I felt fearful.",
    "I could not sleep well.",
    "I was happy.",
    "I talked less than usual.",
    "I felt lonely.",
    "I felt that people were unfriendly.",
    "I enjoyed life.",
    "I had crying spells.",
    "I felt sad.",
    "I felt that people dislike me.",
    "I could not get “going.”",
)

ERS_ITEMS = (
    "If something happens that upsets me, it stays with me for a long time.",
    "My feelings get hurt easily.",
    "When I experience emotions, I feel them very strongly/intensely.",
    "When I am upset, I feel it physically (e.g., in my body).",
    "I tend to get emotional very easily.",
    "I experience emotions very strongly.",
    "I often feel very anxious.",
    "When I am emotional, I have difficulty thinking of anything else.",
    "Even the littlest things make me emotional.",
    "If I have a disagreement with someone, it takes a long time for me to get over it.",
    "When I am angry/upset, it takes me much longer than most people to calm down.",
    "I get angry at people easily.",
    "I am often bothered by things that other people don’t react to.",
    "I get easily “rattled” or upset.",
    "My emotions go from neutral to extreme in an instant.",
    "My mood changes very quickly when something bad happens.",
    "People tell me I have a very strong reaction to things.",
    "I am a very sensitive person.",
    "My emotions are very deep and strong.",
    "I often have trouble remaining calm when I am upset.",
    "Others think I overreact.",
)

AQ_ITEMS = (
    "I prefer to do things with others rather than on my own.",
    "I prefer to do things the same way over and over again.",
    "If I try to imagine something, I find it very easy to create a picture in my mind.",
    "I frequently get so strongly absorbed in one thing that I lose sight of other things.",
    "I usually notice car number plates or similar strings of information.",
    "When I’m reading a story, I can easily imagine what the characters might look like.",
    "I am fascinated by dates.",
    "In a social group, I can easily keep track of several different people’s conversations.",
    "I find social situations easy.",
    "I would rather go to a library than to a party.",
    "I find making up stories easy.",
    "I find myself drawn more strongly to people than to things.",
    "I am fascinated by numbers.",
    "When I’m reading a story, I find it difficult to work out the characters’ intentions.",
    "I find it hard to make new friends.",
    "I tend to notice patterns in things all the time.",
    "It does not upset me if my daily routine is disturbed.",
    "I find it easy to switch between different activities.",
    "I enjoy doing things spontaneously.",
    "I find it easy to work out what someone is thinking or feeling just by looking at their face.",
    "If there is an interruption, I can switch back to what I was doing very quickly.",
    "I like to collect information about categories of things.",
    "I find it difficult to imagine what it would be like to be someone else.",
    "I enjoy social occasions.",
    "I find it difficult to work out people’s intentions.",
    "New situations make me anxious.",
    "I enjoy meeting new people.",
    "I find it very easy to play games with children that involve pretending.",
)

JSI_ITEMS = (
    "It bothers me when someone gets something they don’t deserve.",
    "It gets me down when someone does not get the reward he/she has earned.",
    "I cannot easily tolerate it when someone profits from the work of others without giving "
    "something in return.",
    "I cannot easily forget it when someone else has to make up for someone else’s mistakes.",
    "It worries me when someone has to settle for fewer opportunities than others.",
    "It disturbs me when someone is worse off than others without it being their own fault.",
    "It makes me uneasy when someone has to work hard for what others get easily.",
    "I ponder for a long time when someone is treated better than others for no reason.",
    "It gets me down to see someone criticized for things that are not taken seriously in others.",
    "It makes me sad when someone is treated worse than others.",
)


AQ = Scale(
    key="aq",
    name="Autism-Spectrum Quotient (AQ, short form)",
    measures="social skills, attention to detail and preference for routine",
    items=AQ_ITEMS,
    item_min=1,
    item_max=4,
    anchors="from definitely agree to definitely disagree, scored 1–4 so that a higher "
    "total means more autistic-like traits",
    mean=65.17,
    sd=9.29,
)
ERS = Scale(
    key="ers",
    name="Emotional Reactivity Scale (ERS)",
    measures="how sensitive, intense and lasting your emotional reactions are",
    items=ERS_ITEMS,
    item_min=1,
    item_max=5,
    anchors="1 = not at all like me … 5 = completely like me",
    mean=61.96,
    sd=17.02,
)
CESD = Scale(
    key="cesd",
    name="Center for Epidemiologic Studies Depression Scale (CES-D)",
    measures="depressive symptoms during the past week",
    items=CESD_ITEMS,
    item_min=1,
    item_max=4,
    anchors="1 = rarely or none of the time (less than 1 day) … 4 = most or all of the time "
    "(5–7 days), positive items reversed",
    mean=35.40,
    sd=11.09,
)
JSI = Scale(
    key="jsi",
    name="Justice Sensitivity Inventory, observer perspective (JSI)",
    measures="how strongly you react to injustice done to others",
    items=JSI_ITEMS,
    item_min=0,
    item_max=5,
    anchors="0 = not at all … 5 = exactly",
    mean=32.33,
    sd=7.65,
)

# In the order the profile lists them.
SCALES: tuple[Scale, ...] = (AQ, ERS, CESD, JSI)
