/* yamltree: a YAML file as an immutable tree of scalars, sequences and
 * mappings, where every node knows its line and column.
 *
 * The tree is built from libyaml's event stream, so positions come from the
 * parser itself and survive into every later error message. Only what a
 * configuration file needs is accepted: one document, no anchors or aliases
 * (an alias bomb expands a small file into gigabytes), no tags, no duplicate
 * keys, no NUL bytes in scalars, at most YAMLTREE_MAX_DEPTH levels of nesting
 * and YAMLTREE_MAX_FILE_SIZE bytes. Mappings keep their keys in file order.
 *
 * Scalar values (never keys) may take text from the environment: "${NAME}" is
 * replaced by the variable's value, "${NAME:-default}" by the value or, when
 * it is unset or empty, by the default, and "$$" by a literal "$" (a '$'
 * followed by anything else stays as written). A variable that is not set
 * and has no default, or a reference of another form ("${", "${}",
 * "${1X}"), is an error at the "${". The tree holds the expanded text. */
#ifndef TLSTERM_YAMLTREE_H
#define TLSTERM_YAMLTREE_H

#include <stddef.h>
#include <stdio.h>

#define YAMLTREE_MAX_DEPTH 64
#define YAMLTREE_MAX_FILE_SIZE (1024 * 1024)

/* struct yamltree is one loaded file. It owns every node in it. */
struct yamltree;

/* struct ynode is one node of a yamltree, owned by the tree. */
struct ynode;

enum ynode_kind { YNODE_SCALAR, YNODE_SEQUENCE, YNODE_MAPPING };

/* yamltree_load reads and parses the file at |path|. It returns a new tree,
 * owned by the caller and released with yamltree_free, or NULL after writing
 * every problem found to |errors| as "PATH:LINE:COL: message" lines (problems
 * with the file as a whole, such as a failed open, are reported at 1:1). A
 * syntax error stops the parse, so it is the last line written. */
struct yamltree *yamltree_load(const char *path, FILE *errors);

/* yamltree_free releases |tree| and all its nodes. NULL is allowed. */
void yamltree_free(struct yamltree *tree);

/* yamltree_root returns the document's top node, or NULL when the file holds
 * no document (it is empty or only comments). */
const struct ynode *yamltree_root(const struct yamltree *tree);

/* yamltree_kind returns what |node| is. */
enum ynode_kind yamltree_kind(const struct ynode *node);

/* yamltree_kind_name returns "a scalar", "a sequence" or "a mapping", for
 * messages. */
const char *yamltree_kind_name(enum ynode_kind kind);

/* yamltree_line and yamltree_col return where |node| starts, counting from 1.
 * For a mapping value that is the value itself, not its key. */
int yamltree_line(const struct ynode *node);
int yamltree_col(const struct ynode *node);

/* yamltree_scalar returns the text of a scalar node (NUL-terminated, owned by
 * the tree; "key:" with nothing after it gives ""), or NULL for other kinds.
 * YAML types are not applied: 1.2, true and ~ are all returned as written. */
const char *yamltree_scalar(const struct ynode *node);

/* yamltree_num_items returns the number of items of a sequence or of
 * key/value pairs of a mapping; 0 for a scalar. */
size_t yamltree_num_items(const struct ynode *node);

/* yamltree_item returns item |i| of a sequence, or the value of pair |i| of
 * a mapping. |i| must be below yamltree_num_items. */
const struct ynode *yamltree_item(const struct ynode *node, size_t i);

/* yamltree_key returns the key of pair |i| of a mapping, always a scalar
 * node. |i| must be below yamltree_num_items. */
const struct ynode *yamltree_key(const struct ynode *mapping, size_t i);

/* yamltree_get returns the value for |key| in |mapping|, or NULL when the key
 * is absent or |mapping| is not a mapping. */
const struct ynode *yamltree_get(const struct ynode *mapping, const char *key);

#endif
