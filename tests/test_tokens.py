import pandas as pd

from core import models, tokens


def test_token_view_offsets_cover_the_text(tiny_bert_dir):
    tok = models.load_tokenizer(str(tiny_bert_dir))
    text = "the movie was great"
    view = tokens.tokenize_view(tok, text)
    assert view.tokens["special"].tolist()[0] and view.tokens["special"].tolist()[-1]  # [CLS] ... [SEP]
    pieces = view.tokens[~view.tokens["special"]]
    assert "".join(pieces["piece"]).replace(" ", "") == text.replace(" ", "")
    for r in pieces.itertuples():
        assert text[r.start : r.end] == r.piece


def test_unknown_tokens_counted(tiny_bert_dir):
    tok = models.load_tokenizer(str(tiny_bert_dir))
    assert tokens.tokenize_view(tok, "the ☃ movie").n_unknown == 1


def test_token_stats_per_split_and_label(tiny_bert_dir):
    tok = models.load_tokenizer(str(tiny_bert_dir))
    df = pd.DataFrame(
        {
            "text": ["the movie was great", "bad", "the movie was great and i loved it", "okay"],
            "label": ["p", "n", "p", "n"],
            "split": ["train", "train", "test", "test"],
        }
    )
    stats = tokens.token_stats(tok, df, max_length=6).set_index(["split", "label"])
    lengths = tokens.token_lengths(tok, df["text"].tolist())
    assert stats.loc[("train", "p"), "max_tokens"] == lengths[0]
    assert stats.loc[("test", "p"), "truncated_share"] == 1.0 and stats.loc[("train", "n"), "truncated_share"] == 0.0
    assert stats.loc[("train", "p"), "tokens_per_word"] >= 1.0


def test_chat_template_rendered_with_token_count(tiny_llama_dir):
    tok = models.load_tokenizer(str(tiny_llama_dir))
    text, n = tokens.render_chat_template(tok, "hello there")
    assert text.startswith("<|im_start|>user\nhello there") and text.endswith("assistant\n")
    assert n == len(tok(text, add_special_tokens=False)["input_ids"])


def test_byte_fallback_pieces_recognised():
    assert tokens.is_byte_fallback("<0xE2>") and not tokens.is_byte_fallback("<|im_end|>")
