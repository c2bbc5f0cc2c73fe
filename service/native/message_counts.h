/* The token counts of a plain chat, walked in one native call (message_counts.c). See
 * engine/message_counts.py for the Python face and `ChatFormat.message_layout` (registry/chat/) for who builds the layout.
 *
 * A *plain* message is an exact dict with exactly the keys "role" and "content", both exact str. A chat format
 * whose plain messages each render as
 *     constant special/template tokens + (prefix of the role + content) encoded as one ordinary text
 * (content stripped of surrounding whitespace first when the layout says `strip`)
 * gives that shape as a layout, and the walk counts a whole list of such messages without a Python call per
 * message. Anything else in the list (another key, a role the layout lacks, content with one of the
 * `forbidden` strings, a role that may not come last, text that is not
 * valid UTF-8) makes the walk answer None: the caller then renders the chat the general way, which is exact
 * for every chat and raises the precise error for a bad one. */
#ifndef TOKEND_MESSAGE_COUNTS_H
#define TOKEND_MESSAGE_COUNTS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "text_parts.h"

/* Flags of a role (the optional fifth item of its layout). */
#define TK_ROLE_RSTRIP_SPACES 1 /* the content loses trailing spaces (" " only) */
#define TK_ROLE_NOT_EMPTY 2     /* empty content is not plain (the format refuses it, or renders it otherwise) */
#define TK_ROLE_NOT_REPEATED 4  /* a message of this role right after one of the same role is not plain (merged) */
/* The prefix (ending in "\n", no suffix) counts its own `prefix_tokens` (the sixth item) and the content is counted
 * alone when it is empty or its first character (after `strip`) is neither whitespace (str.isspace) nor one of
 * `joining` (the seventh item): what the encoding's split provably cuts there (engine/newline_boundary.py). Other
 * content, and a message a system prompt is joined into, are counted with the prefix as one text. */
#define TK_ROLE_PREFIX_APART 8
#define TK_ROLE_ALL_FLAGS 15

/* count_messages(roles, first_roles, forbidden, strip, overhead, normalized, system_prompt, messages, per_message[, shape]) with the
 * core's text path in `ops` (only `core`, `sink`, `position` and `text` are used). The layout comes first, so
 * that Python can bind it once (functools.partial) and a call costs no Python frame:
 *   roles        dict: role -> (prefix: str, constant tokens: int, may_be_last: bool[, suffix: str, flags: int
 *                [, prefix_tokens: int, joining: str]]); the message counts constant + the tokens of prefix +
 *                content + suffix as one text (with TK_ROLE_PREFIX_APART, prefix_tokens + the content's tokens
 *                where the split provably cuts between them)
 *   first_roles  the same for the first message, or None (then `roles`)
 *   forbidden    tuple of str: content holding any of them is not plain
 *   strip        true: content loses leading and trailing whitespace first, as str.strip() does
 *   overhead     tokens of the chat that no message owns, added to the total
 *   normalized   None, or a callable telling whether a str is in NFC (the model's normalizer): text it is
 *                not true for is not plain (the core counts text as given)
 *   system_prompt None, or (role, separator, target role, last): a first message of `role` counts 0 tokens, and
 *                its content + separator (when not empty) is joined before the content of the first (`last`:
 *                the last) later message of the target role, inside that message's prefix (mistral v1-v3);
 *                first_roles then applies to the message after it
 *   shape        None, or (roles, owners, guards) of one conversation shape (a traced chat template's layout,
 *                registry/chat/template_count_plan.py), one item per message: a chat of another length, or whose
 *                message i has a role other than roles[i], is not plain; owners (None: each its own) gives the
 *                message whose count gets message i's tokens (its boundary is unknown); guards (None: none) holds
 *                None or (not_empty, characters) per message: content that is empty when not_empty, or that
 *                starts with one of `characters`, is not plain. (A system prompt taken as such skips these.)
 * -> None (not plain; an empty list too), or (total, [tokens of each message] or None when not `per_message`).
 * TypeError / ValueError for a malformed layout or shape. */
PyObject *tk_count_messages(const tk_parts_ops *ops, PyObject *roles, PyObject *first_roles, PyObject *forbidden,
                            int strip, Py_ssize_t overhead, PyObject *normalized, PyObject *system_prompt,
                            PyObject *messages, int per_message, PyObject *shape);

/* tk_count_messages with the arguments of a core's `count_messages` method as Python passed them (the
 * byte-level and SentencePiece cores share one argument list). */
PyObject *tk_count_messages_call(const tk_parts_ops *ops, PyObject *const *args, Py_ssize_t nargs);

/* Adds plain_message_bytes(messages) to the module (the request size of a plain chat, for the service layer's
 * limits): 0, or -1 with an exception. */
int tk_message_counts_add(PyObject *module);

#endif
