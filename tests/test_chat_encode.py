"""chat.encode's cache of the text between added tokens must give exactly the ids of encoding the whole text."""

from hero_gym import chat
from hero_gym.policies.models import tiny_tokenizer


def _texts():
    system = "<|im_start|>system\nYou are a shopping agent. Search, click, buy.<|im_end|>\n"
    for i in range(30):
        user = f"<|im_start|>user\ni need {i} red shoes,  under {i * 3}.5 dollars<|im_end|>\n<|im_start|>assistant\n"
        yield system + user + ("search[red shoes]<|im_end|>\n<tool_call>x</tool_call>" if i % 3 else "")


def test_cached_pieces_give_the_whole_texts_ids():
    tok = tiny_tokenizer()
    for text in list(_texts()) * 2:  # the second pass is served from the cache, past the verification window
        assert chat.encode(tok, text) == list(tok.encode(text, add_special_tokens=False))
    seg = chat._segment_encoder(tok)
    assert seg is not None and seg.enabled and seg.to_verify == 0
    chat.clear_encode_cache(tok)
    assert seg.cache == {}


def test_cache_turns_itself_off_for_a_tokenizer_whose_pieces_encode_differently():
    # Metaspace with prepend_scheme="first" adds "▁" only at the start of the whole text, so a piece after an added
    # token encodes differently alone: the verification must notice and fall back to whole-text encoding.
    from tokenizers import Tokenizer, models, pre_tokenizers
    from tokenizers.trainers import BpeTrainer
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first")
    backend.train_from_iterator(["hello world this is a test", "user says hi"] * 50,
                                BpeTrainer(vocab_size=200, special_tokens=["<unk>", "<s>", "</s>"]))
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="</s>")
    texts = [f"<s>hello world</s><s>user says hi {'test ' * i}</s>" for i in range(chat._SegmentEncoder.VERIFY + 4)]
    for text in texts:
        assert chat.encode(tok, text) == list(tok.encode(text, add_special_tokens=False))
    assert chat._segment_encoder(tok).enabled is False
