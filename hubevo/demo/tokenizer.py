"""Character-level tokenizer shared by every demo-zoo member.

One token per character, plus four specials. The post-processor prepends `<s>` to every
encoded text, so lm-eval and trl see exactly the BOS that training saw; generation stops
at `</s>`. Every member saves the same tokenizer, so merges never reconcile vocabularies.
"""

from __future__ import annotations

import string

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
SPECIALS = (PAD, BOS, EOS, UNK)
# Digits and letters are the skills' alphabets, `#`, `>` and `|` their separators; space and
# newline let chat-formatted or free text through without `<unk>`.
CHARACTERS = string.digits + string.ascii_lowercase + "#>|" + " \n"
MAX_LENGTH = 64  # the models' max_position_embeddings

# No role markers: a conversation is its contents in order, each assistant turn closed by
# `</s>`, which is exactly the training format (`<s>` + prompt + answer + `</s>`).
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['content'] }}"
    "{% if message['role'] == 'assistant' %}{{ eos_token }}{% endif %}{% endfor %}"
)


def build_tokenizer() -> PreTrainedTokenizerFast:
    """Return the demo tokenizer: ids 0-3 are `<pad> <s> </s> <unk>`, then one id per character."""
    vocab = {token: index for index, token in enumerate(SPECIALS + tuple(CHARACTERS))}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    core.decoder = decoders.Fuse()  # join characters back without spaces
    core.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, vocab[BOS])]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        pad_token=PAD,
        padding_side="left",  # generation pads on the left
        model_max_length=MAX_LENGTH,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer
