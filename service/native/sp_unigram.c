/* sentencepiece's Viterbi for Unigram models (unigram_model.cc, Model::EncodeOptimized, release 0.2.3), to the
 * letter: the reference is tokend/engine/sentencepiece/reference.py (ReferenceEncoder.viterbi).
 *
 * best[i] is the score of the best segmentation of text[0:i], kept as a 32-bit float exactly as sentencepiece
 * keeps it (the roundings decide ties): for each character start, every piece found in the trie from there
 * (shortest first) offers best[start] + score to the position where it ends and wins only if strictly higher;
 * UNUSED pieces are skipped; a user-defined piece scores 0.1 * (bytes - 1); if no piece covers exactly the one
 * character, an unknown node scoring min(normal scores) - 10 does. When best[start] leaves +-100,000 the
 * scores from start to the furthest position reached are re-based (sentencepiece's kScoreResetThreshold).
 * Cost: O(text bytes x longest piece) trie steps; 12 bytes of state per byte of text. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime under -std=c11 */
#include <stdlib.h>
#include <time.h>

#include "sp_native.h"

int sp_stop_due(const sp_stop *stop) {
    if (!stop) return 0;
    if (stop->flag && __atomic_load_n(stop->flag, __ATOMIC_RELAXED)) return 1;
    if (stop->deadline > 0) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if ((double)now.tv_sec + 1e-9 * (double)now.tv_nsec >= stop->deadline) return 1;
    }
    return 0;
}

#define SP_SCORE_RESET 100000.0f

ptrdiff_t sp_unigram_encode(const sp_vocab *vocab, const uint8_t *text, size_t len, uint32_t *starts, uint32_t *ids,
                            const sp_stop *stop) {
    if (len == 0) return 0;
    float *best = malloc((len + 1) * sizeof *best);
    uint32_t *from = malloc((len + 1) * sizeof *from); /* start of the best path's last node; SP_NONE: none yet */
    uint32_t *piece = malloc((len + 1) * sizeof *piece);
    ptrdiff_t n = -1;
    if (!best || !from || !piece) goto done;
    for (size_t i = 0; i <= len; i++) {
        best[i] = 0.0f;
        from[i] = SP_NONE;
        piece[i] = SP_NONE;
    }
    size_t max_frontier = 0, next_check = SP_STOP_CHECK_BYTES;
    for (size_t start = 0; start < len;) {
        if (start >= next_check) { /* at most SP_STOP_CHECK_BYTES x 256 trie steps (~6 ms) between checks */
            if (sp_stop_due(stop)) {
                n = -2;
                goto done;
            }
            next_check = start + SP_STOP_CHECK_BYTES;
        }
        float till_here = best[start];
        if (till_here < -SP_SCORE_RESET || till_here > SP_SCORE_RESET) {
            const float offset = till_here;
            for (size_t i = start; i <= max_frontier; i++)
                if (i == start || from[i] != SP_NONE) best[i] -= offset;
            till_here = 0.0f;
        }
        int has_single_node = 0;
        size_t char_len = sp_one_char_len(text[start]);
        if (char_len > len - start) char_len = len - start;
        uint32_t node = SP_TRIE_ROOT;
        for (size_t end = start + 1; end <= len; end++) {
            node = sp_trie_child(vocab, node, text[end - 1]);
            if (node == SP_NONE) break;
            uint32_t id = vocab->trie_piece[node];
            if (id == SP_NONE || vocab->types[id] == SP_UNUSED) continue;
            if (end > max_frontier) max_frontier = end;
            size_t length = end - start;
            float score = vocab->types[id] == SP_USER_DEFINED ? (float)(0.1 * ((int)length - 1)) : vocab->scores[id];
            float candidate = score + till_here;
            if (from[end] == SP_NONE || candidate > best[end]) {
                best[end] = candidate;
                from[end] = (uint32_t)start;
                piece[end] = id;
            }
            if (length == char_len) has_single_node = 1;
        }
        if (!has_single_node) {
            size_t end = start + char_len;
            if (end > max_frontier) max_frontier = end;
            float candidate = vocab->unk_score + till_here;
            if (from[end] == SP_NONE || candidate > best[end]) {
                best[end] = candidate;
                from[end] = (uint32_t)start;
                piece[end] = SP_NONE;
            }
        }
        start += char_len;
    }
    /* Backtrack, then put the nodes in text order. */
    n = 0;
    for (size_t end = len; end > 0; end = from[end]) {
        starts[n] = from[end];
        ids[n++] = piece[end];
    }
    for (ptrdiff_t i = 0, j = n - 1; i < j; i++, j--) {
        uint32_t s = starts[i], d = ids[i];
        starts[i] = starts[j];
        ids[i] = ids[j];
        starts[j] = s;
        ids[j] = d;
    }
done:
    free(best);
    free(from);
    free(piece);
    return n;
}
