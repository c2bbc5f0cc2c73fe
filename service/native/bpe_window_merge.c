/* tiktoken's merge rule for one huge piece, a window at a time: each window is merged on its own (the bucket
 * merge, bpe_bucket_merge.c, whose arrays then stay in L2 instead of spanning the whole piece), and the ids
 * are kept only where the seams between windows are proven not to matter; when a proof fails the caller
 * merges the piece whole.
 *
 * Why cutting is exact when no merge crosses the cut. Let S = L + R. If tiktoken's run on S never merges a
 * pair that spans the cut, its merges inside L are exactly those of L's own run, in the same order (each is
 * the lowest, leftmost pair of S at its moment, so of L too, and nothing outside L changes L's pairs), and
 * likewise for R: ids(S) = ids(L) + ids(R). The same holds for any number of cuts.
 *
 * Which cuts are taken. A window [s, s + W) is merged; a part start p of its result near the end (MARGIN
 * bytes before it, where the window's own end no longer sways the result, in practice) becomes the cut.
 * Since p is a part start of the window's final parts, no merge of the window's run crossed p, so by the
 * argument above the window's ids before p are ids([s, p)): they are kept, and the next window starts at p.
 *
 * The proof of a seam at p, between [q, p)'s last token A and [p, e)'s first token B. In S's run (if no
 * merge crossed a seam so far) the part ending at p goes through the right spine of A: the tokens a_0 (the
 * byte before p), a_1, ..., a_k = A, each made from the one before at its rank alpha_i — the merges of A's
 * own bytes, since no merge crossed A's ends in its segment's run, and ranks grow along it. Likewise the part
 * starting at p goes through B's left spine b_0 .. b_m at ranks beta_j. With the ranks in merge order (the
 * bucket merge checked it) S merges one rank at a time, left to right within a rank: a_i and b_j sit side by
 * side from when the later of them is made until a_i grows (at alpha_{i+1}) or b_j does (beta_{j+1}); at
 * equal ranks the left side's merge comes first. Their pair, of rank x, is merged by S (the seam crossed)
 * iff x comes before the first of those two ends: x < alpha_{i+1} and x <= beta_{j+1} (x == beta_{j+1}: the
 * pair is left of b_j's merge with its right neighbour, so it goes first; x == alpha_{i+1}: a_i's merge with
 * its left neighbour is further left and goes first). A pair made with a rank below the current one also
 * satisfies it, and a_k, b_m (no further end) must not make a token at all. If no such pair exists at any
 * seam, no merge crosses any seam (the first one to would have been one of these pairs) and the windows'
 * ids are tiktoken's. This is the "compatible pair" idea of rust-gems' `bpe` crate, written for rank order.
 *
 * Cost: the windows' merges (a MARGIN-byte tail of each merged twice), and at each seam the merges of A's
 * and B's bytes (at most MAX_SEAM_TOKEN each) plus a lookup per pair of spine tokens. Memory: one window's
 * arrays plus ~24 bytes per rank of the vocabulary (bpe_bucket_merge.c). */
#include <stdlib.h>
#include <string.h>

#include "tokend_native.h"

#define WINDOW_BYTES 65536
/* The cut is the last part start at least this many bytes before a window's end. */
#define MARGIN 256
/* A seam's tokens longer than this decline (their spines are computed by an O(n^2) loop). */
#define MAX_SEAM_TOKEN 128

typedef struct {
    uint32_t length[MAX_SEAM_TOKEN + 1]; /* spine token i's length in bytes (1 for the byte at the seam) */
    uint32_t rank[MAX_SEAM_TOKEN + 1];   /* rank at which spine token i was made (unused for i = 0) */
    size_t size;
} spine;

/* The spine on the seam's side of the token `token` (`len` bytes): from_end != 0 the parts that hold its last
 * byte (the token left of a seam), else those that hold its first byte. -1 when the token is too long, its
 * own bytes do not merge into it alone, or the spine's ranks do not grow (ranks not in merge order). */
static int seam_spine(const tk_rank_table *table, const uint8_t *token, size_t len, int from_end, spine *out) {
    if (len == 0 || len > MAX_SEAM_TOKEN) return -1;
    uint32_t start[MAX_SEAM_TOKEN + 1], rank[MAX_SEAM_TOKEN + 1];
    size_t m = len + 1; /* parts k = 0 .. m-2 start at start[k]; start[m-1] == len */
    for (size_t k = 0; k < m; k++) start[k] = (uint32_t)k;
    for (size_t k = 0; k + 2 < m; k++) rank[k] = tk_rank_of(table, token + k, 2);
    rank[m - 2] = TK_NO_RANK;
    out->size = 1;
    out->length[0] = 1;
    for (;;) {
        uint32_t best = TK_NO_RANK;
        size_t at = 0;
        for (size_t k = 0; k + 2 < m; k++) {
            if (rank[k] < best) {
                best = rank[k];
                at = k;
            }
        }
        if (best == TK_NO_RANK) break;
        uint32_t made = 0; /* the merged part's length when it holds the seam's byte */
        if (from_end && at + 3 == m) made = (uint32_t)(len - start[at]);
        if (!from_end && at == 0) made = start[2];
        if (made) {
            if (out->size > 1 && best <= out->rank[out->size - 1]) return -1;
            out->length[out->size] = made;
            out->rank[out->size++] = best;
        }
        if (at > 0) rank[at - 1] = tk_rank_of(table, token + start[at - 1], start[at + 2] - start[at - 1]);
        rank[at] = at + 4 <= m ? tk_rank_of(table, token + start[at], start[at + 3] - start[at]) : TK_NO_RANK;
        memmove(&start[at + 1], &start[at + 2], (m - at - 2) * sizeof start[0]);
        memmove(&rank[at + 1], &rank[at + 2], (m - at - 2) * sizeof rank[0]);
        m--;
    }
    return m == 2 ? 0 : -1;
}

/* 1 when tiktoken's run over the whole piece never merges across offset `seam` (given that it merges across
 * no other seam), where `left` ([seam - left_len, seam)) and `right` ([seam, seam + right_len)) are the
 * tokens on either side: the proof in the comment at the top. */
static int seam_holds(const tk_rank_table *table, const uint8_t *piece, size_t len, size_t seam, size_t left_len,
                      size_t right_len) {
    spine a, b;
    if (seam_spine(table, piece + seam - left_len, left_len, 1, &a) < 0 ||
        seam_spine(table, piece + seam, right_len, 0, &b) < 0)
        return 0;
    const uint64_t never = (uint64_t)UINT32_MAX + 1; /* after every rank */
    size_t i = 0, j = 0;
    for (;;) {
        uint64_t a_ends = i + 1 < a.size ? a.rank[i + 1] : never, b_ends = j + 1 < b.size ? b.rank[j + 1] : never;
        size_t start = seam - a.length[i];
        uint32_t x = tk_rank_of_readable(table, piece + start, a.length[i] + b.length[j], len - start);
        if (x != TK_NO_RANK && x < a_ends && x <= b_ends) return 0;
        if (i + 1 == a.size && j + 1 == b.size) return 1;
        if (a_ends <= b_ends) /* the left side's merge first at equal ranks */
            i++;
        else
            j++;
    }
}

ptrdiff_t tk_bpe_merge_windows_sized(const tk_rank_table *table, const uint8_t *piece, size_t len, size_t n_ranks,
                                     uint32_t *out, size_t window, size_t margin) {
    if (len >= UINT32_MAX || window <= margin || margin == 0) return -2;
    tk_bucket_merger *merger = tk_bucket_merger_new(table, n_ranks);
    if (!merger) return -1;
    ptrdiff_t result = -2;
    size_t n = 0, start = 0, left_len = 0; /* left_len: the last kept token's length (0: none yet) */
    for (;;) {
        size_t size = len - start < window ? len - start : window;
        int status = tk_bucket_merger_run(merger, piece + start, size);
        if (status < 0) {
            result = status;
            break;
        }
        size_t cut = size;
        if (start + size < len) {
            cut = tk_bucket_merger_start_at_most(merger, size - margin);
            if (cut == 0) break; /* one token over the whole window: no cut */
        }
        if (left_len &&
            !seam_holds(table, piece, len, start, left_len, tk_bucket_merger_next_start(merger, 0)))
            break;
        n += tk_bucket_merger_ids(merger, cut, out ? out + n : NULL);
        if (start + cut == len) {
            result = (ptrdiff_t)n;
            break;
        }
        left_len = cut - tk_bucket_merger_start_at_most(merger, cut - 1);
        start += cut;
    }
    tk_bucket_merger_free(merger);
    return result;
}

ptrdiff_t tk_bpe_merge_windows(const tk_rank_table *table, const uint8_t *piece, size_t len, size_t n_ranks,
                               uint32_t *out) {
    return tk_bpe_merge_windows_sized(table, piece, len, n_ranks, out, WINDOW_BYTES, MARGIN);
}
