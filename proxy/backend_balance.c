/* backend_balance: see backend_balance.h. */
#include "backend_balance.h"

/* The panic tiers: first the servers not in a passive cooldown, whatever
 * their checks say; then, when every server is cooling, all of them: a
 * cooldown is proof that connects failed, not that they still fail (a
 * server restarted meanwhile would otherwise go unused for the whole
 * cooldown, the group refusing every client). */
enum tier { TIER_PRIMARY, TIER_BACKUP, TIER_PANIC, TIER_PANIC_COOLING };

static bool candidate(const struct balance_server *s, enum tier tier)
{
    if (s->tried)
        return false;
    switch (tier) {
    case TIER_PRIMARY:
        return !s->backup && s->up && !s->cooling;
    case TIER_BACKUP:
        return s->backup && s->up && !s->cooling;
    case TIER_PANIC:
        return !s->cooling;
    default:
        return true;
    }
}

/* lighter says whether |a| carries less load per unit of weight than |b|. */
static bool lighter(const struct balance_server *a, const struct balance_server *b)
{
    return (a->active * (int64_t)b->weight) < (b->active * (int64_t)a->weight);
}

static int pick_in_tier(enum cfg_balance balance, const struct balance_server *servers,
                        size_t num, enum tier tier, uint64_t ticket, uint64_t random)
{
    uint64_t total_weight = 0;
    size_t num_candidates = 0;

    for (size_t i = 0; i < num; i++) {
        if (candidate(&servers[i], tier)) {
            total_weight += servers[i].weight;
            num_candidates++;
        }
    }
    if (num_candidates == 0)
        return -1;
    switch (balance) {
    case CFG_BALANCE_LEAST_CONN: {
        int best = -1;
        for (size_t k = 0; k < num; k++) {
            size_t i = (size_t)((ticket + k) % num);
            if (candidate(&servers[i], tier) &&
                (best < 0 || lighter(&servers[i], &servers[best])))
                best = (int)i;
        }
        return best;
    }
    case CFG_BALANCE_RANDOM_TWO: {
        /* Two draws by weight from the halves of |random|. */
        uint64_t draws[2] = {(random & 0xffffffffu) % total_weight,
                             (random >> 32) % total_weight};
        int chosen[2] = {-1, -1};
        for (int d = 0; d < 2; d++) {
            uint64_t left = draws[d];
            for (size_t i = 0; i < num && chosen[d] < 0; i++) {
                if (!candidate(&servers[i], tier))
                    continue;
                if (left < servers[i].weight)
                    chosen[d] = (int)i;
                else
                    left -= servers[i].weight;
            }
        }
        return lighter(&servers[chosen[1]], &servers[chosen[0]]) ? chosen[1] : chosen[0];
    }
    default: {
        uint64_t left = ticket % total_weight;
        for (size_t i = 0; i < num; i++) {
            if (!candidate(&servers[i], tier))
                continue;
            if (left < servers[i].weight)
                return (int)i;
            left -= servers[i].weight;
        }
        return -1; /* not reached: the weights add up to total_weight */
    }
    }
}

int backend_balance_pick(enum cfg_balance balance, bool panic,
                         const struct balance_server *servers, size_t num, uint64_t ticket,
                         uint64_t random, enum balance_outcome *out_outcome)
{
    int chosen = pick_in_tier(balance, servers, num, TIER_PRIMARY, ticket, random);

    if (chosen < 0)
        chosen = pick_in_tier(balance, servers, num, TIER_BACKUP, ticket, random);
    bool any_up = false;
    for (size_t i = 0; i < num; i++)
        any_up = any_up || (servers[i].up && !servers[i].cooling);
    *out_outcome = BALANCE_PICKED;
    /* Panic only when no server is up at all, not when the up ones have
     * all been tried by this connection. */
    if (chosen < 0 && panic && !any_up) {
        chosen = pick_in_tier(balance, servers, num, TIER_PANIC, ticket, random);
        if (chosen < 0)
            chosen = pick_in_tier(balance, servers, num, TIER_PANIC_COOLING, ticket, random);
        *out_outcome = BALANCE_PANIC;
    }
    if (chosen < 0)
        *out_outcome = BALANCE_NONE;
    return chosen;
}
