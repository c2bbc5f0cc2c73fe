/* tokend.engine.sentencepiece._native: the Python face of the SentencePiece BPE core, one type.
 *
 *   core = SentencePieceCore(pieces, scores, types, charsmap=b"", add_dummy_prefix=True,
 *                            remove_extra_whitespaces=True, escape_whitespaces=True,
 *                            treat_whitespace_as_suffix=False, byte_fallback=False,
 *                            cache_capacity=16384, max_cached_piece_bytes=128, hash_seed=seed,
 *                            unigram=False)
 *   core.encode("Hello world")      -> [15043, 3186]   normalize + BPE + byte fallback, as sentencepiece
 *   core.count("Hello world")       -> 2               the same without building a list
 *   core.encode_bytes(b"...")       -> ids of raw bytes (malformed UTF-8 becomes U+FFFD, as sentencepiece)
 *   core.normalize(b"..."[, cap])   -> the normalized bytes (None past cap bytes); a str as encode() sees it
 *   core.encode_normalized(core.normalize(text)) == core.encode(text), without normalizing again (and count_)
 *   core.cache_stats()              -> (hits, misses, size, capacity)
 *   core.count_messages(roles, first_roles, forbidden, strip, overhead, normalized, system_prompt, messages, per_message[, shape])
 *                                   a plain chat, each text counted as count() counts it (message_counts.c)
 *
 * How a text is encoded: the normalizer writes the whole normalized text; a scan cuts it into symbols (the
 * longest user-defined piece, else one character) and into *segments* wherever no piece can span the
 * boundary between two symbols: the two characters are adjacent inside no piece (sp_adjacent_in_a_piece:
 * per-character flags, an exact ASCII table, a filter elsewhere). No merge can cross such a boundary, and
 * merges on either side never compete for a symbol, so running the merge loop per segment picks, within each
 * segment, exactly the merges the loop over the whole sentence picks (the order between segments does not
 * matter). Segments of four symbols or more are looked up in a cache (segment bytes -> ids) and merged
 * (sp_bpe.c) only on a miss; shorter ones are merged directly. The cache of a segment of up to 15 bytes (most
 * words: "▁word" is 3 bytes more than the word) is a short table (short_table.h: the bytes are the key, one
 * probe, the ids inline) until it holds SP_MAX_SHORT_SEGMENTS of them; longer segments, and new ones once it is
 * full, take the piece cache (a slot, then an entry and its arena). A user-defined piece is a segment of its own
 * and is never merged.
 *
 * Unigram models take the Viterbi path (sp_unigram.c) over the whole sentence, without the cache.
 *
 * Models with an UNUSED piece of two or more characters take another path (encode_sentence): sentencepiece
 * splits such a piece again using the pair last offered for it anywhere in the sentence, a whole-sentence rule
 * that segments cannot reproduce, so the whole normalized sentence is merged at once, without the cache.
 *
 * Threads: everything touching the cache runs with the GIL held; the normalization of a big str and the merge
 * of a long segment run without it (they read only the immutable tables, the immutable str and their own
 * buffers); the normalization of a shorter text goes without the GIL too once its length x the longest rule walk
 * may reach SP_RELEASE_GIL_WALK_STEPS (a bytearray is copied first). The scan, which holds the GIL, hands it to a
 * waiting thread once it has held it a switch interval and a quarter (gil_hand_off.h, looked at every
 * SP_CHECK_BYTES of normalized text or SP_CHECK_WALK_STEPS).
 *
 * Stopping: each call reads tokend.engine.call_stop's context variable once (deadline, cancel flag); the
 * normalizer and the Viterbi (every SP_STOP_CHECK_BYTES) check it without the GIL, the scan at its checks, and
 * the call raises call_stop.CallStopped. The merge of one long BPE segment is not cut (it is O(n log n) in the
 * segment's symbols, without the GIL). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdlib.h>
#include <string.h>

#include "call_stopped.h"
#include "gil_hand_off.h"
#include "message_counts.h"
#include "short_table.h"
#include "sp_native.h"

#define SP_RELEASE_GIL_SYMBOLS 16384
#define SP_RELEASE_GIL_TEXT_BYTES 65536
/* A Unigram text's walk takes up to trie_depth steps a byte (~6 ns each): 64 KB of text is ~2 ms for the real
 * models (a few steps a byte), but a crafted vocabulary of 256 nested pieces ("a" ... 256 "a"s) walks 256 steps a
 * byte of "aaa...": ~110 ms holding the GIL under 64 KB. Such texts go without the GIL from 1 Mi steps (~6 ms). */
#define SP_RELEASE_GIL_WALK_STEPS (1u << 20)
/* The scan looks at the clock (for the call's stop and the GIL's hand-off, gil_hand_off.h) every SP_CHECK_BYTES
 * of normalized text, or sooner when its user-defined walks may have taken SP_CHECK_WALK_STEPS (~1-1.5 ms either
 * way). The scan holds the GIL rather than going without it as the byte-level core does for big texts: its
 * segments go through the shared piece cache and short table, which only GIL holders touch, and a cache of its
 * own without a short table runs at the piece cache's speed (74-77 against 83-88 MB/s counting English). */
#define SP_CHECK_BYTES 16384
#define SP_CHECK_WALK_STEPS (1u << 18)
#define SP_MAX_CACHE_CAPACITY (1 << 24)
#define SP_UNCACHED_SYMBOLS 3
/* Segments the short table holds at most (4 MiB of slots, 1 MiB of ids), and never more than the piece cache's
 * capacity (piece_cache_capacity=0 turns both off). Counting English with Llama 2's vocabulary: 74-77 -> 83-88
 * MB/s against the piece cache alone (same run, alternating builds). Fetching the lines of a batch of 16
 * segments ahead of their lookups, as the byte-level core does, made it slower (71-73 MB/s): the batch's
 * bookkeeping cost more than the waits it saved. */
#define SP_MAX_SHORT_SEGMENTS 65536
#define SP_MAX_RESEGMENT_DEPTH 100

typedef struct {
    PyObject_HEAD
    sp_vocab vocab;
    sp_normalizer normalizer;
    tk_piece_cache cache;
    tk_short_table shorts; /* segments of <= 15 bytes (entries NULL: none); its hits and misses count in `cache` */
    PyObject **id_objects; /* piece id -> int (owned) */
    uint32_t n_ids;
    int ready;
} SentencePieceCore;

/* Where ids go: a growable array, or only a count. Consecutive <unk> collapse into one (without byte fallback,
 * as sentencepiece's PopulateSentencePieceText does); <unk> is produced by nothing else. */
typedef struct {
    uint32_t *ids;
    size_t len, cap;
    size_t count;
    int counting;
    int last_unk;
    /* The caller's call stop (take_stop), else NULL: its deadline, and its flag's buffer held for the call (a
     * bytearray cannot be resized meanwhile). On the heap: only calls with a stop pay for it. */
    struct SinkStop *stop;
} Sink;

struct SinkStop {
    sp_stop stop;
    Py_buffer flag_view;
};

static inline const sp_stop *sink_stop(const Sink *sink) { return sink->stop ? &sink->stop->stop : NULL; }

/* Reads the caller's call stop into the sink (GIL held, tk_read_call_stop). 0, or -1 with an exception. */
static int take_stop(Sink *sink) {
    double deadline;
    Py_buffer flag;
    int status = tk_read_call_stop(&deadline, &flag);
    if (status != 1) return status;
    struct SinkStop *stop = PyMem_Malloc(sizeof *stop);
    if (!stop) {
        PyBuffer_Release(&flag);
        PyErr_NoMemory();
        return -1;
    }
    stop->flag_view = flag; /* a PyBUF_SIMPLE view: no pointers into itself, so it may be moved */
    stop->stop.deadline = deadline;
    stop->stop.flag = flag.buf;
    sink->stop = stop;
    return 0;
}

static void release_stop(Sink *sink) {
    if (sink->stop) {
        PyBuffer_Release(&sink->stop->flag_view);
        PyMem_Free(sink->stop);
    }
    sink->stop = NULL;
}

static int sink_reserve(Sink *sink, size_t more) {
    if (sink->len + more <= sink->cap) return 0;
    size_t cap = sink->cap ? sink->cap : 64;
    while (cap < sink->len + more) cap *= 2;
    uint32_t *ids = PyMem_Realloc(sink->ids, cap * sizeof *ids);
    if (!ids) {
        PyErr_NoMemory();
        return -1;
    }
    sink->ids = ids;
    sink->cap = cap;
    return 0;
}

static inline int sink_put(const sp_vocab *vocab, Sink *sink, const uint32_t *ids, size_t n) {
    if (!sink->counting && sink_reserve(sink, n) < 0) return -1;
    if (vocab->byte_fallback) { /* no <unk> to collapse */
        if (sink->counting) {
            sink->count += n;
        } else {
            for (size_t i = 0; i < n; i++) sink->ids[sink->len + i] = ids[i]; /* mostly 1-3 ids: no memcpy call */
            sink->len += n;
        }
        return 0;
    }
    uint32_t unk = vocab->unk_id;
    for (size_t i = 0; i < n; i++) {
        int is_unk = ids[i] == unk;
        if (is_unk && sink->last_unk) continue;
        sink->last_unk = is_unk;
        if (sink->counting)
            sink->count++;
        else
            sink->ids[sink->len++] = ids[i];
    }
    return 0;
}

/* The output ids of one final symbol (the bytes [text, text+len) it covers) into out; returns how many. */
static size_t symbol_ids(const sp_vocab *vocab, uint32_t id, const uint8_t *text, size_t len, uint32_t *out) {
    /* sentencepiece 0.2.3: an UNUSED piece that is not split again (a single character) counts as unknown. */
    if (id < vocab->n_pieces && vocab->types[id] != SP_UNUSED) {
        out[0] = id;
        return 1;
    }
    if (!vocab->byte_fallback) {
        out[0] = vocab->unk_id;
        return 1;
    }
    for (size_t i = 0; i < len; i++) out[i] = vocab->byte_ids[text[i]];
    return len;
}

/* Scratch space for one segment, reused across segments of a call. */
typedef struct {
    uint32_t *ids;     /* symbol ids */
    uint32_t *starts;  /* byte offset of each symbol in the normalized text (encode_sentence only) */
    uint32_t *keep;    /* survivors' initial indices (encode_sentence only) */
    uint32_t *out;     /* output ids (at most 4 per symbol: byte fallback of a 4-byte character) */
    size_t start;      /* byte offset of the first symbol (encode_normalized) */
    size_t n, cap;
} Segment;

/* Room for n symbols. `sentence`: encode_sentence's, with starts and keep, and out holding a value per symbol
 * that must survive. */
static int segment_reserve(Segment *segment, size_t n, int sentence) {
    if (n <= segment->cap) return 0;
    size_t cap = segment->cap ? segment->cap : 256;
    while (cap < n) cap *= 2;
    uint32_t *ids = realloc(segment->ids, cap * sizeof *ids);
    if (ids) segment->ids = ids;
    uint32_t *starts = NULL, *keep = NULL, *out;
    if (sentence) {
        starts = realloc(segment->starts, cap * sizeof *starts);
        if (starts) segment->starts = starts;
        /* keep is written afresh by the merge: a new block, not realloc, which would copy the old one whole */
        free(segment->keep);
        keep = segment->keep = malloc(cap * sizeof *keep);
        out = realloc(segment->out, 4 * cap * sizeof *out);
        if (out) segment->out = out;
    } else {
        /* out is written afresh by every flush: a new block (it is 16 bytes a symbol, nearly all of it never
         * written: for one 1 MB segment, realloc's copies and the page faults they caused were a fifth of the
         * encode) */
        free(segment->out);
        out = segment->out = malloc(4 * cap * sizeof *out);
    }
    if (!ids || (sentence && (!starts || !keep)) || !out) {
        PyErr_NoMemory();
        return -1;
    }
    segment->cap = cap;
    return 0;
}

static void segment_free(Segment *segment) {
    free(segment->ids);
    free(segment->starts);
    free(segment->keep);
    free(segment->out);
}

/* Encodes the segment's n symbols, which end at byte `end` of `text`, into the sink. `text_len`: the normalized
 * text's length (a short key reads 16 bytes from the segment on where they are there). */
static int flush_segment(SentencePieceCore *self, Sink *sink, Segment *segment, const uint8_t *text, size_t end,
                         size_t text_len) {
    const sp_vocab *vocab = &self->vocab;
    size_t n = segment->n;
    segment->n = 0;
    if (n == 0) return 0;
    const uint8_t *bytes = text + segment->start;
    size_t len = end - segment->start;
    if (n == 1) {
        size_t k = symbol_ids(vocab, segment->ids[0], bytes, len, segment->out);
        return sink_put(vocab, sink, segment->out, k);
    }
    /* Two or three symbols merge in one or two pair lookups: cheaper than looking up a cache. */
    int use_cache = n > SP_UNCACHED_SYMBOLS;
    uint64_t hash = 0;
    tk_short_key key = {0, 0};
    uint64_t short_hash = 0;
    int use_short = use_cache && len <= TK_SHORT_MAX_LEN && len <= self->cache.max_key_len && self->shorts.entries;
    if (use_short) {
        key = tk_short_key_of(bytes, len, text_len - segment->start);
        short_hash = tk_short_hash(&self->shorts, &key);
        const tk_short_entry *e = tk_short_find(&self->shorts, &key, short_hash);
        if (e) {
            self->cache.hits++;
            return sink_put(vocab, sink, segment->out, tk_short_copy_ids(&self->shorts, e, segment->out));
        }
        /* Not held: into the short table after the merge while it has room; once it is full, the piece cache's way. */
        use_short = tk_short_table_has_room(&self->shorts);
        if (use_short) self->cache.misses++;
    }
    if (use_cache && !use_short) {
        hash = tk_hash(bytes, len, self->cache.seed);
        ptrdiff_t cached = tk_piece_cache_get(&self->cache, bytes, len, hash, segment->out);
        if (cached >= 0) return sink_put(vocab, sink, segment->out, (size_t)cached);
    }
    ptrdiff_t m;
    if (n >= SP_RELEASE_GIL_SYMBOLS) {
        Py_BEGIN_ALLOW_THREADS
        m = sp_bpe_merge(vocab, segment->ids, n);
        Py_END_ALLOW_THREADS
    } else {
        m = sp_bpe_merge(vocab, segment->ids, n);
    }
    if (m < 0) {
        PyErr_NoMemory();
        return -1;
    }
    /* The survivors in text order: a piece covers its own bytes, anything else one character (as the scan
     * read it). */
    size_t k = 0, at = segment->start;
    for (ptrdiff_t j = 0; j < m; j++) {
        uint32_t id = segment->ids[j];
        size_t symbol_len = id < vocab->n_pieces ? vocab->piece_lens[id] : sp_one_char_len(text[at]);
        if (symbol_len > end - at) symbol_len = end - at;
        k += symbol_ids(vocab, id, text + at, symbol_len, segment->out + k);
        at += symbol_len;
    }
    if (use_short) {
        if (k >= 1 && k <= TK_SHORT_MAX_LEN) /* counted in n_added when added */
            tk_short_table_put(&self->shorts, &key, short_hash, segment->out, (uint32_t)k, TK_SHORT_ADDED, 0);
    } else if (use_cache) {
        tk_piece_cache_put(&self->cache, bytes, len, hash, segment->out, k);
    }
    return sink_put(vocab, sink, segment->out, k);
}

static int encode_normalized(SentencePieceCore *self, Sink *sink, const uint8_t *text, size_t len) {
    const sp_vocab *vocab = &self->vocab;
    const int has_user_defined = vocab->user_defined.n_nodes > 0;
    Segment segment = {0};
    int status = 0;
    /* next_check: a byte of text counts 1 toward it, a user-defined walk of up to `depth` steps depth / 16 (so a
     * check comes at least every SP_CHECK_BYTES x 16 = SP_CHECK_WALK_STEPS, without a second counter in the loop) */
    size_t pos = 0, next_check = SP_CHECK_BYTES;
    const size_t walk_charge = vocab->user_defined.depth / (SP_CHECK_WALK_STEPS / SP_CHECK_BYTES);
    TkGilHandOff hand_off = {0, 0};
    uint32_t previous = SP_NONE;
    uint8_t previous_ascii = 0;
    while (pos < len && status == 0) {
        if (pos >= next_check) {
            /* let the other threads of this process run during a big text, or a short one whose user-defined
             * walks are long (a 256-byte piece: 256 steps a byte of "aaa...", 60 KB held the GIL ~190 ms) */
            if (sp_stop_due(sink_stop(sink))) {
                tk_raise_call_stopped();
                status = -1;
                break;
            }
            tk_gil_hand_off(&hand_off);
            next_check = pos + SP_CHECK_BYTES;
        }
        if (has_user_defined && vocab->user_defined.root[text[pos]] != SP_NONE) {
            uint32_t piece_id;
            next_check = next_check - pos > walk_charge ? next_check - walk_charge : pos;
            size_t matched = sp_trie_longest(&vocab->user_defined, text + pos, len - pos, &piece_id);
            if (matched) {
                status = flush_segment(self, sink, &segment, text, pos, len);
                if (status == 0) status = sink_put(vocab, sink, &piece_id, 1);
                pos += matched;
                previous = SP_NONE;
                previous_ascii = 0;
                continue;
            }
        }
        uint8_t byte = text[pos];
        uint8_t ascii = byte < 0x80 ? byte : 0;
        size_t char_len = 1;
        uint32_t id;
        int joins;
        if (ascii && previous_ascii) { /* two ASCII characters: a table each */
            id = vocab->chars.byte_rank[byte];
            unsigned bit = (unsigned)previous_ascii << 7 | ascii;
            joins = (vocab->ascii_joinable[bit >> 3] >> (bit & 7)) & 1;
        } else {
            char_len = sp_one_char_len(byte);
            if (char_len > len - pos) char_len = len - pos;
            id = sp_char_id(vocab, text + pos, char_len);
            joins = sp_adjacent_in_a_piece(vocab, previous, id, previous_ascii, ascii);
        }
        if (segment.n && !joins) {
            uint32_t only = segment.ids[0];
            if (segment.n == 1 && only < vocab->n_pieces && vocab->types[only] != SP_UNUSED) { /* a piece: itself */
                segment.n = 0;
                status = sink_put(vocab, sink, &only, 1);
            } else {
                status = flush_segment(self, sink, &segment, text, pos, len);
            }
        }
        if (segment.n == segment.cap && status == 0) status = segment_reserve(&segment, segment.n + 1, 0);
        if (status == 0) {
            if (segment.n == 0) segment.start = pos;
            segment.ids[segment.n++] = id;
        }
        previous = id;
        previous_ascii = ascii;
        pos += char_len;
    }
    if (status == 0) status = flush_segment(self, sink, &segment, text, len, len);
    segment_free(&segment);
    return status;
}

/* Emits the piece `id` covering text[start:end], splitting an UNUSED piece again into the pair last offered for
 * it (sentencepiece's resegment), recursively; a symbol that is not a piece is an unknown character. */
static int resegment(SentencePieceCore *self, Sink *sink, const uint64_t *rev, uint32_t id, const uint8_t *text,
                     size_t start, size_t end, int depth) {
    const sp_vocab *vocab = &self->vocab;
    if (depth > SP_MAX_RESEGMENT_DEPTH && id < vocab->n_pieces) /* sentencepiece's kMaxBpeResegmentDepth */
        return sink_put(vocab, sink, &id, 1);
    if (id < vocab->n_pieces && vocab->types[id] == SP_UNUSED && rev[vocab->unused_slot[id]] != UINT64_MAX) {
        uint32_t left = (uint32_t)(rev[vocab->unused_slot[id]] >> 32), right = (uint32_t)rev[vocab->unused_slot[id]];
        size_t left_len = left < vocab->n_pieces ? vocab->piece_lens[left] : sp_one_char_len(text[start]);
        if (left_len > end - start) left_len = end - start;
        if (resegment(self, sink, rev, left, text, start, start + left_len, depth + 1) < 0) return -1;
        return resegment(self, sink, rev, right, text, start + left_len, end, depth + 1);
    }
    uint32_t out[4];
    if (id >= vocab->n_pieces && vocab->byte_fallback && end - start > 4) { /* not from valid text; stay in bounds */
        for (size_t i = start; i < end; i++)
            if (sink_put(vocab, sink, &vocab->byte_ids[text[i]], 1) < 0) return -1;
        return 0;
    }
    return sink_put(vocab, sink, out, symbol_ids(vocab, id, text + start, end - start, out));
}

/* Models with UNUSED pieces of two or more characters: the whole normalized sentence is one merge problem, as
 * in sentencepiece (no segments, no cache), so the re-splitting of UNUSED pieces sees every offered pair. */
static int encode_sentence(SentencePieceCore *self, Sink *sink, const uint8_t *text, size_t len) {
    const sp_vocab *vocab = &self->vocab;
    Segment segment = {0}; /* ids: pairing ids; out: the fixed id of a user-defined symbol (else SP_NONE) */
    uint64_t *rev = NULL;
    int status = -1;
    size_t n = 0, next_check = SP_CHECK_BYTES; /* charged as encode_normalized's scan charges it */
    const size_t walk_charge = vocab->user_defined.depth / (SP_CHECK_WALK_STEPS / SP_CHECK_BYTES);
    TkGilHandOff hand_off = {0, 0};
    for (size_t pos = 0; pos < len; n++) {
        if (pos >= next_check) {
            if (sp_stop_due(sink_stop(sink))) {
                tk_raise_call_stopped();
                goto done;
            }
            tk_gil_hand_off(&hand_off);
            next_check = pos + SP_CHECK_BYTES;
        }
        if (segment_reserve(&segment, n + 1, 1) < 0) goto done;
        uint32_t piece_id = SP_NONE;
        size_t step = 0;
        if (vocab->user_defined.root[text[pos]] != SP_NONE) {
            next_check = next_check - pos > walk_charge ? next_check - walk_charge : pos;
            step = sp_trie_longest(&vocab->user_defined, text + pos, len - pos, &piece_id);
        }
        if (step) { /* frozen: never pairs */
            segment.ids[n] = SP_NONE;
            segment.out[n] = piece_id;
        } else {
            step = sp_one_char_len(text[pos]);
            if (step > len - pos) step = len - pos;
            segment.ids[n] = sp_char_id(vocab, text + pos, step);
            segment.out[n] = SP_NONE;
        }
        segment.starts[n] = (uint32_t)pos;
        pos += step;
    }
    rev = malloc((vocab->n_unused ? vocab->n_unused : 1) * sizeof *rev);
    if (!rev) {
        PyErr_NoMemory();
        goto done;
    }
    memset(rev, 0xFF, (vocab->n_unused ? vocab->n_unused : 1) * sizeof *rev);
    if (sp_stop_due(sink_stop(sink))) {
        tk_raise_call_stopped();
        goto done;
    }
    ptrdiff_t m;
    if (n >= SP_RELEASE_GIL_SYMBOLS) {
        Py_BEGIN_ALLOW_THREADS
        m = sp_bpe_merge_sentence(vocab, segment.ids, n, segment.keep, rev);
        Py_END_ALLOW_THREADS
    } else {
        m = sp_bpe_merge_sentence(vocab, segment.ids, n, segment.keep, rev);
    }
    if (m < 0) {
        PyErr_NoMemory();
        goto done;
    }
    for (ptrdiff_t j = 0; j < m; j++) {
        uint32_t first = segment.keep[j];
        size_t start = segment.starts[first], end = j + 1 < m ? segment.starts[segment.keep[j + 1]] : len;
        int failed = segment.out[first] != SP_NONE ? sink_put(vocab, sink, &segment.out[first], 1)
                                                   : resegment(self, sink, rev, segment.ids[j], text, start, end, 0);
        if (failed < 0) goto done;
    }
    status = 0;
done:
    free(rev);
    segment_free(&segment);
    return status;
}

/* Unigram models: sentencepiece's Viterbi over the whole normalized sentence (its float roundings and score
 * re-basing depend on the whole sentence, so no segments and no cache). */
static int encode_unigram(SentencePieceCore *self, Sink *sink, const uint8_t *text, size_t len) {
    const sp_vocab *vocab = &self->vocab;
    uint32_t *starts = malloc((len ? len : 1) * sizeof *starts), *ids = malloc((len ? len : 1) * sizeof *ids);
    int status = -1;
    ptrdiff_t n = -1;
    if (starts && ids) {
        if (len >= SP_RELEASE_GIL_TEXT_BYTES || len * vocab->trie_depth >= SP_RELEASE_GIL_WALK_STEPS) {
            Py_BEGIN_ALLOW_THREADS
            n = sp_unigram_encode(vocab, text, len, starts, ids, sink_stop(sink));
            Py_END_ALLOW_THREADS
        } else {
            n = sp_unigram_encode(vocab, text, len, starts, ids, sink_stop(sink));
        }
    }
    if (n == -2) {
        tk_raise_call_stopped();
        goto done;
    }
    if (n < 0) {
        PyErr_NoMemory();
        goto done;
    }
    for (ptrdiff_t j = 0; j < n; j++) {
        size_t start = starts[j], end = j + 1 < n ? starts[j + 1] : len;
        uint32_t out[4];
        if (ids[j] == SP_NONE && vocab->byte_fallback && end - start > 4) { /* not from valid text; stay in bounds */
            for (size_t i = start; i < end; i++)
                if (sink_put(vocab, sink, &vocab->byte_ids[text[i]], 1) < 0) goto done;
            continue;
        }
        if (sink_put(vocab, sink, out, symbol_ids(vocab, ids[j], text + start, end - start, out)) < 0) goto done;
    }
    status = 0;
done:
    free(starts);
    free(ids);
    return status;
}

static PyObject *ids_to_list(SentencePieceCore *self, const Sink *sink) {
    PyObject *list = PyList_New((Py_ssize_t)sink->len);
    if (!list) return NULL;
    for (size_t i = 0; i < sink->len; i++) {
        PyObject *item = self->id_objects[sink->ids[i]];
        Py_INCREF(item);
        PyList_SET_ITEM(list, (Py_ssize_t)i, item);
    }
    return list;
}

/* tokend.errors.ModelFormatError (a leaf module): what the model makes of the text is the model's fault, which
 * the service answers as a broken model, never as an internal error. */
static void raise_model_error(const char *format, size_t len, int factor) {
    PyObject *errors = PyImport_ImportModule("tokend.errors");
    PyObject *kind = errors ? PyObject_GetAttrString(errors, "ModelFormatError") : NULL;
    Py_XDECREF(errors);
    if (!kind) return; /* the import's own error stands */
    PyErr_Format(kind, format, len, factor);
    Py_DECREF(kind);
}

static int require_ready(SentencePieceCore *self) {
    if (!self->ready) {
        PyErr_SetString(PyExc_TypeError, "SentencePieceCore is not initialised");
        return -1;
    }
    return 0;
}

/* Normalizes text[0:len] into *normalized: 0, 1 when the output passed `cap` bytes (SIZE_MAX: none; no error
 * set), -1 with an error. `valid_utf8`: the bytes are a str's UTF-8; `immutable`: they cannot change while the
 * GIL is released (a str's, a bytes object's), else they are copied first when it is. Without the GIL from 64 KB,
 * or sooner when length x the longest rule walk reaches SP_RELEASE_GIL_WALK_STEPS (a 256-byte user-defined piece
 * or charsmap chain: 256 steps a byte). */
static int normalize_into(SentencePieceCore *self, const uint8_t *text, size_t len, int valid_utf8, int immutable,
                          const sp_stop *stop, size_t cap, sp_bytes *normalized) {
    if (len >= UINT32_MAX / 4) { /* symbols are located with 32-bit offsets into the normalized text */
        PyErr_SetString(PyExc_ValueError, "a text of 1 GiB or more cannot be encoded in one call; split it");
        return -1;
    }
    int status;
    if (len >= SP_RELEASE_GIL_TEXT_BYTES || len * sp_normalizer_walk(&self->normalizer) >= SP_RELEASE_GIL_WALK_STEPS) {
        uint8_t *copy = NULL;
        if (!immutable) {
            if (!(copy = malloc(len ? len : 1))) {
                PyErr_NoMemory();
                return -1;
            }
            memcpy(copy, text, len);
            text = copy;
        }
        Py_BEGIN_ALLOW_THREADS
        status = sp_normalize(&self->normalizer, text, len, valid_utf8, normalized, stop, cap);
        Py_END_ALLOW_THREADS
        free(copy);
    } else {
        status = sp_normalize(&self->normalizer, text, len, valid_utf8, normalized, stop, cap);
    }
    if (status == -5) return 1;
    if (status == -4) {
        tk_raise_call_stopped();
        return -1;
    }
    if (status == -3) {
        raise_model_error("the model's normalizer rules make this text of %zu bytes more than %d times longer; "
                          "no real normalizer does (nmt_nfkc: 11 times at most)", len, SP_MAX_EXPANSION);
        return -1;
    }
    if (status < 0) {
        PyErr_NoMemory();
        return -1;
    }
    if (normalized->len >= UINT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "the normalized text reaches 4 GiB; split the text");
        return -1;
    }
    return 0;
}

static PyObject *run(SentencePieceCore *self, const uint8_t *text, size_t len, int valid_utf8, int immutable,
                     int counting) {
    sp_bytes normalized = {0};
    Sink sink = {0};
    sink.counting = counting;
    PyObject *result = NULL;
    int (*encode)(SentencePieceCore *, Sink *, const uint8_t *, size_t) =
        self->vocab.unigram ? encode_unigram : self->vocab.has_unused_merges ? encode_sentence : encode_normalized;
    /* A text whose normalized form cannot reach the first check (every SP_STOP_CHECK_BYTES) skips the context
     * variable's lookup. */
    int stop_status = len >= SP_STOP_CHECK_BYTES / SP_MAX_EXPANSION ? take_stop(&sink) : 0;
    if (stop_status == 0 && normalize_into(self, text, len, valid_utf8, immutable, sink_stop(&sink), SIZE_MAX, &normalized) == 0 &&
        encode(self, &sink, normalized.data, normalized.len) == 0)
        result = counting ? PyLong_FromSize_t(sink.count) : ids_to_list(self, &sink);
    release_stop(&sink);
    PyMem_Free(sink.ids);
    sp_bytes_free(&normalized);
    return result;
}

static PyObject *run_text(SentencePieceCore *self, PyObject *arg, int counting) {
    if (require_ready(self) < 0) return NULL;
    if (!PyUnicode_Check(arg)) return PyErr_Format(PyExc_TypeError, "expected str, got %.100s", Py_TYPE(arg)->tp_name);
    Py_ssize_t len;
    const char *text = PyUnicode_AsUTF8AndSize(arg, &len);
    if (!text) return NULL; /* lone surrogates: UnicodeEncodeError, handled by the Encoding */
    return run(self, (const uint8_t *)text, (size_t)len, 1, 1, counting);
}

static PyObject *SentencePieceCore_encode(SentencePieceCore *self, PyObject *arg) { return run_text(self, arg, 0); }

/* The plain-chat walk's text step: the tokens of one text, as count() counts it (its own sentence: the dummy
 * prefix, whitespace handling and <unk> collapsing start afresh), added to the sink's count. The text is a
 * str's UTF-8 or the walk's own copy of one: valid, and unchanged while the GIL may be released. */
static int messages_text(void *core, void *sink, const uint8_t *text, size_t len) {
    SentencePieceCore *self = core;
    Sink *counter = sink;
    sp_bytes normalized = {0};
    int (*encode)(SentencePieceCore *, Sink *, const uint8_t *, size_t) =
        self->vocab.unigram ? encode_unigram : self->vocab.has_unused_merges ? encode_sentence : encode_normalized;
    counter->last_unk = 0;
    int status = -1;
    if (normalize_into(self, text, len, 1, 1, sink_stop(counter), SIZE_MAX, &normalized) == 0 &&
        encode(self, counter, normalized.data, normalized.len) == 0)
        status = 0;
    sp_bytes_free(&normalized);
    return status;
}

static PyObject *SentencePieceCore_count_messages(SentencePieceCore *self, PyObject *const *args, Py_ssize_t nargs) {
    if (require_ready(self) < 0) return NULL;
    Sink sink = {0};
    sink.counting = 1;
    if (take_stop(&sink) < 0) return NULL;
    tk_parts_ops ops = {self, &sink, &sink.count, messages_text, NULL};
    PyObject *result = tk_count_messages_call(&ops, args, nargs);
    release_stop(&sink);
    return result;
}
static PyObject *SentencePieceCore_count(SentencePieceCore *self, PyObject *arg) { return run_text(self, arg, 1); }

static PyObject *SentencePieceCore_encode_bytes(SentencePieceCore *self, PyObject *arg) {
    if (require_ready(self) < 0) return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    PyObject *result = run(self, view.buf, (size_t)view.len, 0, PyBytes_CheckExact(arg), 0);
    PyBuffer_Release(&view);
    return result;
}

/* normalize(text[, cap]): a str is normalized from its UTF-8 as encode() normalizes it, anything else as
 * encode_bytes() does; None when the output passes `cap` bytes (what was written is dropped). */
static PyObject *SentencePieceCore_normalize(SentencePieceCore *self, PyObject *const *args, Py_ssize_t nargs) {
    if (require_ready(self) < 0) return NULL;
    if (nargs < 1 || nargs > 2) return PyErr_Format(PyExc_TypeError, "normalize(text[, cap]) takes 1 or 2 arguments");
    size_t cap = SIZE_MAX;
    if (nargs == 2 && args[1] != Py_None) {
        cap = PyLong_AsSize_t(args[1]);
        if (cap == (size_t)-1 && PyErr_Occurred()) return NULL;
    }
    PyObject *arg = args[0];
    sp_bytes normalized = {0};
    PyObject *result = NULL;
    int status;
    if (PyUnicode_Check(arg)) {
        Py_ssize_t len;
        const char *text = PyUnicode_AsUTF8AndSize(arg, &len);
        if (!text) return NULL; /* lone surrogates: UnicodeEncodeError, as encode() raises it */
        status = normalize_into(self, (const uint8_t *)text, (size_t)len, 1, 1, NULL, cap, &normalized);
    } else {
        Py_buffer view;
        if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
        status = normalize_into(self, view.buf, (size_t)view.len, 0, PyBytes_CheckExact(arg), NULL, cap, &normalized);
        PyBuffer_Release(&view);
    }
    if (status == 0)
        result = PyBytes_FromStringAndSize((const char *)normalized.data, (Py_ssize_t)normalized.len);
    else if (status == 1)
        result = Py_NewRef(Py_None);
    sp_bytes_free(&normalized);
    return result;
}

/* encode_normalized(normalized) / count_normalized(normalized): encode() / count() of a text whose normalized
 * form normalize() gave (bytes), without normalizing it again: the same ids. */
static PyObject *run_normalized(SentencePieceCore *self, PyObject *arg, int counting) {
    if (require_ready(self) < 0) return NULL;
    if (!PyBytes_CheckExact(arg)) /* immutable while the Viterbi or a merge runs without the GIL */
        return PyErr_Format(PyExc_TypeError, "expected bytes, got %.100s", Py_TYPE(arg)->tp_name);
    size_t len = (size_t)PyBytes_GET_SIZE(arg);
    if (len >= UINT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "the normalized text reaches 4 GiB; split the text");
        return NULL;
    }
    Sink sink = {0};
    sink.counting = counting;
    PyObject *result = NULL;
    int (*encode)(SentencePieceCore *, Sink *, const uint8_t *, size_t) =
        self->vocab.unigram ? encode_unigram : self->vocab.has_unused_merges ? encode_sentence : encode_normalized;
    int stop_status = len >= SP_STOP_CHECK_BYTES ? take_stop(&sink) : 0;
    if (stop_status == 0 && encode(self, &sink, (const uint8_t *)PyBytes_AS_STRING(arg), len) == 0)
        result = counting ? PyLong_FromSize_t(sink.count) : ids_to_list(self, &sink);
    release_stop(&sink);
    PyMem_Free(sink.ids);
    return result;
}

static PyObject *SentencePieceCore_encode_normalized(SentencePieceCore *self, PyObject *arg) {
    return run_normalized(self, arg, 0);
}

static PyObject *SentencePieceCore_count_normalized(SentencePieceCore *self, PyObject *arg) {
    return run_normalized(self, arg, 1);
}

static PyObject *SentencePieceCore_cache_stats(SentencePieceCore *self, PyObject *Py_UNUSED(ignored)) {
    tk_piece_cache *cache = &self->cache;
    return Py_BuildValue("(KKnn)", (unsigned long long)cache->hits, (unsigned long long)cache->misses,
                         (Py_ssize_t)(cache->generations[0].n_entries + cache->generations[1].n_entries +
                                      __atomic_load_n(&self->shorts.n_added, __ATOMIC_RELAXED)),
                         (Py_ssize_t)(2 * cache->capacity + self->shorts.max_added));
}

static void SentencePieceCore_dealloc(SentencePieceCore *self) {
    sp_vocab_free(&self->vocab);
    sp_normalizer_free(&self->normalizer);
    tk_piece_cache_free(&self->cache);
    tk_short_table_free(&self->shorts);
    if (self->id_objects) {
        for (uint32_t i = 0; i < self->n_ids; i++) Py_XDECREF(self->id_objects[i]);
        PyMem_Free(self->id_objects);
    }
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int SentencePieceCore_init(SentencePieceCore *self, PyObject *args, PyObject *kwargs) {
    static char *keywords[] = {"pieces", "scores", "types", "charsmap", "add_dummy_prefix", "remove_extra_whitespaces",
                               "escape_whitespaces", "treat_whitespace_as_suffix", "byte_fallback", "cache_capacity",
                               "max_cached_piece_bytes", "hash_seed", "unigram", NULL};
    PyObject *pieces, *scores;
    Py_buffer types, charsmap = {0};
    int add_dummy_prefix = 1, remove_extra = 1, escape = 1, suffix = 0, byte_fallback = 0, unigram = 0;
    Py_ssize_t cache_capacity = 65536, max_key_len = 128;
    unsigned long long seed = 0;
    if (self->id_objects || self->ready) {
        PyErr_SetString(PyExc_TypeError, "SentencePieceCore is already initialised");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!O!y*|$y*pppppnnKp", keywords, &PyList_Type, &pieces, &PyList_Type,
                                     &scores, &types, &charsmap, &add_dummy_prefix, &remove_extra, &escape, &suffix,
                                     &byte_fallback, &cache_capacity, &max_key_len, &seed, &unigram))
        return -1;
    int status = -1;
    const uint8_t **piece_data = NULL;
    size_t *piece_lens = NULL;
    float *score_values = NULL;
    Py_ssize_t n = PyList_GET_SIZE(pieces);
    if (cache_capacity < 0 || cache_capacity > SP_MAX_CACHE_CAPACITY || max_key_len < 0 || max_key_len > 1024) {
        PyErr_Format(PyExc_ValueError, "cache_capacity must be in 0..%d and max_cached_piece_bytes in 0..1024",
                     SP_MAX_CACHE_CAPACITY);
        goto done;
    }
    if (n == 0 || n >= (Py_ssize_t)(SP_NONE / 2) || PyList_GET_SIZE(scores) != n || types.len != n) {
        PyErr_SetString(PyExc_ValueError, "pieces, scores and types must be non-empty lists of the same length");
        goto done;
    }
    piece_data = PyMem_Malloc(n * sizeof *piece_data);
    piece_lens = PyMem_Malloc(n * sizeof *piece_lens);
    score_values = PyMem_Malloc(n * sizeof *score_values);
    self->id_objects = PyMem_Calloc(n, sizeof *self->id_objects);
    if (!piece_data || !piece_lens || !score_values || !self->id_objects) {
        PyErr_NoMemory();
        goto done;
    }
    self->n_ids = (uint32_t)n;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *piece = PyList_GET_ITEM(pieces, i), *score = PyList_GET_ITEM(scores, i);
        if (!PyBytes_Check(piece) || PyBytes_GET_SIZE(piece) == 0) {
            PyErr_Format(PyExc_TypeError, "pieces[%zd] must be non-empty bytes", i);
            goto done;
        }
        double value = PyFloat_AsDouble(score);
        if (value == -1.0 && PyErr_Occurred()) goto done;
        piece_data[i] = (const uint8_t *)PyBytes_AS_STRING(piece);
        piece_lens[i] = (size_t)PyBytes_GET_SIZE(piece);
        score_values[i] = (float)value;
        if (!(self->id_objects[i] = PyLong_FromSsize_t(i))) goto done;
    }
    const uint8_t *ws = escape ? (const uint8_t *)"\xe2\x96\x81" : (const uint8_t *)" ";
    int vocab_status = sp_vocab_init(&self->vocab, (uint32_t)n, piece_data, piece_lens, types.buf, score_values,
                                     byte_fallback, ws, escape ? 3 : 1, seed, unigram);
    if (vocab_status == -2) {
        PyErr_Format(PyExc_ValueError, "the vocabulary is too large: its pieces and the characters inside them must "
                     "number fewer than %u", SP_MAX_SYMBOLS);
        goto done;
    }
    if (vocab_status < 0) {
        PyErr_NoMemory();
        goto done;
    }
    if (self->vocab.unk_id == SP_NONE) {
        PyErr_SetString(PyExc_ValueError, "the vocabulary has no piece of type UNKNOWN");
        goto done;
    }
    if (byte_fallback) {
        for (int b = 0; b < 256; b++) {
            if (self->vocab.byte_ids[b] == SP_NONE) {
                PyErr_Format(PyExc_ValueError, "byte_fallback is on but the byte piece <0x%02X> is missing", b);
                goto done;
            }
        }
    }
    int charsmap_status = sp_normalizer_init(&self->normalizer, charsmap.buf, charsmap.buf ? (size_t)charsmap.len : 0);
    if (charsmap_status < 0) {
        if (charsmap_status == -1)
            PyErr_NoMemory();
        else
            PyErr_SetString(PyExc_ValueError, "the precompiled charsmap is broken (its trie size does not fit)");
        goto done;
    }
    self->normalizer.add_dummy_prefix = add_dummy_prefix;
    self->normalizer.remove_extra_whitespaces = remove_extra;
    self->normalizer.escape_whitespaces = escape;
    self->normalizer.treat_whitespace_as_suffix = suffix;
    self->normalizer.user_defined = &self->vocab.user_defined;
    sp_normalizer_prepare(&self->normalizer);
    if (tk_piece_cache_init(&self->cache, (size_t)cache_capacity, (size_t)max_key_len, seed) < 0) {
        PyErr_NoMemory();
        goto done;
    }
    size_t short_segments = cache_capacity < SP_MAX_SHORT_SEGMENTS ? (size_t)cache_capacity : SP_MAX_SHORT_SEGMENTS;
    tk_short_table_free(&self->shorts); /* a zeroed table, or one of an __init__ that failed after it */
    /* A cached segment has more than SP_UNCACHED_SYMBOLS symbols, so at least as many bytes + 1. */
    if (short_segments && max_key_len > SP_UNCACHED_SYMBOLS &&
        tk_short_table_init_empty(&self->shorts, short_segments, seed) < 0) {
        PyErr_NoMemory();
        goto done;
    }
    self->ready = 1;
    status = 0;
done:
    PyMem_Free(piece_data);
    PyMem_Free(piece_lens);
    PyMem_Free(score_values);
    PyBuffer_Release(&types);
    if (charsmap.obj) PyBuffer_Release(&charsmap);
    return status;
}

static PyObject *SentencePieceCore_has_unused_merges(SentencePieceCore *self, void *Py_UNUSED(closure)) {
    return PyBool_FromLong(self->vocab.has_unused_merges);
}

static PyMethodDef SentencePieceCore_methods[] = {
    {"encode", (PyCFunction)SentencePieceCore_encode, METH_O, "encode(text) -> ids"},
    {"count", (PyCFunction)SentencePieceCore_count, METH_O, "count(text) -> number of ids"},
    {"encode_bytes", (PyCFunction)SentencePieceCore_encode_bytes, METH_O, "encode_bytes(data) -> ids of raw bytes"},
    {"normalize", (PyCFunction)(void (*)(void))SentencePieceCore_normalize, METH_FASTCALL,
     "normalize(text[, cap]) -> normalized bytes, or None past cap bytes"},
    {"encode_normalized", (PyCFunction)SentencePieceCore_encode_normalized, METH_O,
     "encode_normalized(normalize(text)) -> encode(text)'s ids"},
    {"count_normalized", (PyCFunction)SentencePieceCore_count_normalized, METH_O,
     "count_normalized(normalize(text)) -> count(text)"},
    {"cache_stats", (PyCFunction)SentencePieceCore_cache_stats, METH_NOARGS, "cache_stats() -> (hits, misses, size, capacity)"},
    {"count_messages", (PyCFunction)(void (*)(void))SentencePieceCore_count_messages, METH_FASTCALL,
     "count_messages(roles, first_roles, forbidden, strip, overhead, normalized, system_prompt, messages, per_message[, shape]) -> None or "
     "(total, counts): a plain chat (message_counts.h)"},
    {NULL, NULL, 0, NULL},
};

static PyObject *SentencePieceCore_normalizer_walk(SentencePieceCore *self, void *Py_UNUSED(closure)) {
    return PyLong_FromSize_t(self->ready ? sp_normalizer_walk(&self->normalizer) : 0);
}

static PyGetSetDef SentencePieceCore_getset[] = {
    {"normalizer_walk", (getter)SentencePieceCore_normalizer_walk, NULL,
     "the most steps one position's normalizer rules may walk (the longest user-defined piece or charsmap key)", NULL},
    {"has_unused_merges", (getter)SentencePieceCore_has_unused_merges, NULL,
     "an UNUSED piece of two or more characters exists (whole sentences are merged at once, without the cache)", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject SentencePieceCoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "tokend.engine.sentencepiece._native.SentencePieceCore",
    .tp_doc = "Native sentencepiece normalizer + BPE + piece cache over one model (see sp_module.c).",
    .tp_basicsize = sizeof(SentencePieceCore),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)SentencePieceCore_init,
    .tp_dealloc = (destructor)SentencePieceCore_dealloc,
    .tp_methods = SentencePieceCore_methods,
    .tp_getset = SentencePieceCore_getset,
};

/* sp_byte_runs.c (a Python-facing function of its own: sp_native.h stays free of Python's headers) */
PyObject *sp_decode_surfaces(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *sp_decode_run(PyObject *module, PyObject *const *args, Py_ssize_t nargs);

static PyMethodDef sp_native_functions[] = {
    {"decode_surfaces", (PyCFunction)(void (*)(void))sp_decode_surfaces, METH_FASTCALL,
     "decode_surfaces(surfaces, strict) -> text, or strict's first error (position, run, index): sp_byte_runs.c"},
    {"decode_run", (PyCFunction)(void (*)(void))sp_decode_run, METH_FASTCALL,
     "decode_run(run, strict) -> text, or the index of strict's first error: sp_byte_runs.c"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef sp_native_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "tokend.engine.sentencepiece._native",
    .m_doc = "tokend's SentencePiece BPE core in C (see service/native/sp_*.c).",
    .m_size = -1,
    .m_methods = sp_native_functions,
};

PyMODINIT_FUNC PyInit__native(void) {
    if (PyType_Ready(&SentencePieceCoreType) < 0) return NULL;
    PyObject *module = PyModule_Create(&sp_native_module);
    if (!module) return NULL;
    Py_INCREF(&SentencePieceCoreType);
    if (PyModule_AddObject(module, "SentencePieceCore", (PyObject *)&SentencePieceCoreType) < 0) {
        Py_DECREF(&SentencePieceCoreType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
