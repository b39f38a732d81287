"""The quality cost of a quantization: perplexity of a model on a short built-in text.

:data:`SAMPLE_TEXT` is public-domain English prose (the Declaration of Independence's preamble,
the Gettysburg Address, the close of Darwin's *Origin of Species*, and the opening of Melville's
*Moby-Dick*), about 1,100 SmolLM2 tokens: enough for four chunks of 256 tokens, so measuring a
135M model takes a few seconds on two cores.  A small text gives a noisy absolute number; the
*difference* between two quantizations of one model on the same text is what it is for
(llama.cpp's own tables use wikitext-2, which is not shipped here).

It sits above ``engine`` (it loads the model) and is used by ``llamarun quantize`` and
``llamarun perplexity``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .engine.perplexity import Perplexity

__all__ = ["SAMPLE_TEXT", "QualityCost", "measure_perplexity", "quality_cost"]

SAMPLE_TEXT = (
    "When in the Course of human events, it becomes necessary for one people to dissolve the political bands "
    "which have connected them with another, and to assume among the powers of the earth, the separate and equal "
    "station to which the Laws of Nature and of Nature's God entitle them, a decent respect to the opinions of "
    "mankind requires that they should declare the causes which impel them to the separation. We hold these "
    "truths to be self-evident, that all men are created equal, that they are endowed by their Creator with "
    "certain unalienable Rights, that among these are Life, Liberty and the pursuit of Happiness. That to secure "
    "these rights, Governments are instituted among Men, deriving their just powers from the consent of the "
    "governed, That whenever any Form of Government becomes destructive of these ends, it is the Right of the "
    "People to alter or to abolish it, and to institute new Government, laying its foundation on such principles "
    "and organizing its powers in such form, as to them shall seem most likely to effect their Safety and "
    "Happiness. Prudence, indeed, will dictate that Governments long established should not be changed for light "
    "and transient causes; and accordingly all experience hath shewn, that mankind are more disposed to suffer, "
    "while evils are sufferable, than to right themselves by abolishing the forms to which they are accustomed.\n\n"
    "Four score and seven years ago our fathers brought forth on this continent, a new nation, conceived in "
    "Liberty, and dedicated to the proposition that all men are created equal. Now we are engaged in a great "
    "civil war, testing whether that nation, or any nation so conceived and so dedicated, can long endure. We "
    "are met on a great battle-field of that war. We have come to dedicate a portion of that field, as a final "
    "resting place for those who here gave their lives that that nation might live. It is altogether fitting "
    "and proper that we should do this. But, in a larger sense, we can not dedicate, we can not consecrate, we "
    "can not hallow this ground. The brave men, living and dead, who struggled here, have consecrated it, far "
    "above our poor power to add or detract. The world will little note, nor long remember what we say here, "
    "but it can never forget what they did here. It is for us the living, rather, to be dedicated here to the "
    "unfinished work which they who fought here have thus far so nobly advanced.\n\n"
    "It is interesting to contemplate an entangled bank, clothed with many plants of many kinds, with birds "
    "singing on the bushes, with various insects flitting about, and with worms crawling through the damp earth, "
    "and to reflect that these elaborately constructed forms, so different from each other, and dependent on "
    "each other in so complex a manner, have all been produced by laws acting around us. These laws, taken in "
    "the highest sense, being Growth with Reproduction; Inheritance which is almost implied by reproduction; "
    "Variability from the indirect and direct action of the external conditions of life, and from use and "
    "disuse; a Ratio of Increase so high as to lead to a Struggle for Life, and as a consequence to Natural "
    "Selection, entailing Divergence of Character and the Extinction of less-improved forms. Thus, from the war "
    "of nature, from famine and death, the most exalted object which we are capable of conceiving, namely, the "
    "production of the higher animals, directly follows. There is grandeur in this view of life, with its "
    "several powers, having been originally breathed into a few forms or into one; and that, whilst this planet "
    "has gone cycling on according to the fixed law of gravity, from so simple a beginning endless forms most "
    "beautiful and most wonderful have been, and are being, evolved.\n\n"
    "Call me Ishmael. Some years ago, never mind how long precisely, having little or no money in my purse, and "
    "nothing particular to interest me on shore, I thought I would sail about a little and see the watery part "
    "of the world. It is a way I have of driving off the spleen and regulating the circulation. Whenever I find "
    "myself growing grim about the mouth; whenever it is a damp, drizzly November in my soul; whenever I find "
    "myself involuntarily pausing before coffin warehouses, and bringing up the rear of every funeral I meet; "
    "and especially whenever my hypos get such an upper hand of me, that it requires a strong moral principle "
    "to prevent me from deliberately stepping into the street, and methodically knocking people's hats off, "
    "then, I account it high time to get to sea as soon as I can. This is my substitute for pistol and ball. "
    "With a philosophical flourish Cato throws himself upon his sword; I quietly take to the ship. There is "
    "nothing surprising in this. If they but knew it, almost all men in their degree, some time or other, "
    "cherish very nearly the same feelings towards the ocean with me. There now is your insular city of the "
    "Manhattoes, belted round by wharves as Indian isles by coral reefs, commerce surrounds it with her surf."
)


def measure_perplexity(path: str | os.PathLike[str], *, text: str = SAMPLE_TEXT, n_ctx: int = 256,
                       n_threads: int | None = None) -> Perplexity:
    """Load the GGUF at ``path`` and measure its perplexity on ``text`` (default :data:`SAMPLE_TEXT`)."""
    from .engine import Model
    from .engine.perplexity import perplexity

    with Model(path) as model:
        tokens = model.tokenize(text, add_special=False)
        return perplexity(model, tokens, n_ctx=n_ctx, n_threads=n_threads)


@dataclass(frozen=True)
class QualityCost:
    """Perplexity before and after a conversion, on the same text and chunks."""

    before: float
    after: float
    scored_tokens: int

    @property
    def increase(self) -> float:
        """Relative increase of perplexity (0.02: 2 % worse; negative: the noise of a small text)."""
        return self.after / self.before - 1.0

    def describe(self) -> str:
        return (f"perplexity {self.before:.3f} -> {self.after:.3f} ({self.increase:+.1%}) on {self.scored_tokens} "
                "tokens of llamarun's sample text")


def quality_cost(before: str | os.PathLike[str], after: str | os.PathLike[str], *,
                 n_threads: int | None = None) -> QualityCost:
    """Perplexity of two GGUFs of one model on :data:`SAMPLE_TEXT`."""
    a = measure_perplexity(before, n_threads=n_threads)
    b = measure_perplexity(after, n_threads=n_threads)
    return QualityCost(a.value, b.value, b.scored_tokens)
