"""Redis actions: session counts, one session reset, pattern deletion, big keys, cache statistics, FLUSHALL.

The runbook's `KEYS "session:*"`, `EVAL … redis.call('keys', …)` and `FLUSHALL` block or wipe a shared
server; these actions use SCAN and UNLINK (through `clients.redis`) and say so in their messages.
FLUSHALL runs only when the spec asks for it (`parameters.flushAll`) and the step is approved.
Deletions record a checkpoint once done, so a resumed step does not log out users who signed in since.
"""

from __future__ import annotations

from tradesense_operator.api.v1alpha1.incident import StepAction
from tradesense_operator.services.step_adapters.base import Outcome, StepContext, StepFailed, StepResult
from tradesense_operator.services.step_adapters.connections import redis_client
from tradesense_operator.services.step_adapters.step_inputs import param_int, param_str, require_str

SAFE_EQUIVALENT = "SCAN+UNLINK, the non-blocking equivalent of the runbook's KEYS/FLUSHALL"
_TOP = 5


class RedisSessionCount:
    """`KEYS "session:*"` (as SCAN) and `TTL "session:<user>"`."""

    name = StepAction.REDIS_SESSION_COUNT
    destructive = False

    async def describe(self, ctx: StepContext) -> str:
        pattern = require_str(ctx.step, "pattern")
        return f"count keys matching {pattern} with SCAN (read-only)"

    async def run(self, ctx: StepContext) -> StepResult:
        pattern = require_str(ctx.step, "pattern")
        key = param_str(ctx.step, "key")
        async with redis_client(ctx) as redis:
            count = await redis.count_keys(pattern)
            evidence = {"sessions": str(count), "pattern": pattern}
            message = f"{count} keys match {pattern} (counted with SCAN, not KEYS)"
            if key is not None:
                ttl = await redis.ttl(key)
                shown = "absent" if not ttl.exists else ("no expiry" if ttl.seconds is None else f"{ttl.seconds}s")
                evidence["ttl"] = shown
                message += f"; TTL {key}: {shown}"
        return StepResult(Outcome.DONE, message, evidence)


class RedisDeleteKey:
    """`redis_client.delete("session:<user>")`: reset one user's session."""

    name = StepAction.REDIS_DELETE_KEY
    destructive = False

    async def describe(self, ctx: StepContext) -> str:
        key = param_str(ctx.step, "key")
        if key is None:
            return "no parameters.userId: the session reset would be skipped"
        async with redis_client(ctx) as redis:
            exists = (await redis.ttl(key)).exists
        return f"delete {key} ({'present' if exists else 'already absent'})"

    async def run(self, ctx: StepContext) -> StepResult:
        key = param_str(ctx.step, "key")
        if key is None:
            return StepResult(Outcome.SKIPPED, "no session reset: spec.parameters.userId is not set")
        async with redis_client(ctx) as redis:
            deleted = await redis.delete_key(key)
        if not deleted:
            return StepResult(Outcome.ALREADY_DONE, f"{key} is already absent (no session to reset)", {"key": key})
        return StepResult(Outcome.DONE, f"deleted {key}: the user must log in again", {"key": key})


class RedisDeletePattern:
    """Clear a key pattern (analytics cache, all sessions) with SCAN+UNLINK."""

    name = StepAction.REDIS_DELETE_PATTERN
    destructive = False

    async def describe(self, ctx: StepContext) -> str:
        pattern = require_str(ctx.step, "pattern")
        async with redis_client(ctx) as redis:
            count = await redis.count_keys(pattern)
        return f"delete {count} keys matching {pattern} ({SAFE_EQUIVALENT}); other keys are kept"

    async def run(self, ctx: StepContext) -> StepResult:
        pattern = require_str(ctx.step, "pattern")
        if "deleted" in ctx.checkpoint:
            return StepResult(Outcome.ALREADY_DONE, f"keys matching {pattern} were already deleted by this step",
                              {"deleted": ctx.checkpoint["deleted"], "pattern": pattern})
        async with redis_client(ctx) as redis:
            deleted = await redis.delete_pattern(pattern)
        await ctx.save_checkpoint({"deleted": str(deleted)})
        evidence = {"deleted": str(deleted), "pattern": pattern}
        if deleted == 0:
            return StepResult(Outcome.ALREADY_DONE, f"no keys match {pattern} (nothing to delete)", evidence)
        return StepResult(Outcome.DONE, f"deleted {deleted} keys matching {pattern} with {SAFE_EQUIVALENT}", evidence)


class RedisFlushall:
    """`redis-cli FLUSHALL`, only with parameters.flushAll (and, being destructive, an approval)."""

    name = StepAction.REDIS_FLUSHALL
    destructive = True

    async def describe(self, ctx: StepContext) -> str:
        if not ctx.spec.parameters.flush_all:
            return "FLUSHALL refused: spec.parameters.flushAll is false"
        async with redis_client(ctx) as redis:
            info = await redis.info("keyspace")
        keys = sum(int(v.get("keys", 0)) for v in info.values() if isinstance(v, dict))
        return f"FLUSHALL: delete every key of every database on the server ({keys} keys now)"

    async def run(self, ctx: StepContext) -> StepResult:
        if not ctx.spec.parameters.flush_all:
            raise StepFailed("refusing FLUSHALL: spec.parameters.flushAll is false (the default deletes sessions only)")
        if "flushedAt" in ctx.checkpoint:
            return StepResult(Outcome.ALREADY_DONE, "FLUSHALL already done by this step")
        async with redis_client(ctx) as redis:
            await redis.flushall()
        now = ctx.runtime.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")
        await ctx.save_checkpoint({"flushedAt": now})
        return StepResult(Outcome.DONE, "FLUSHALL done: every key on the server was deleted", {"flushedAt": now})


class RedisBigkeys:
    """`redis-cli --bigkeys`, as a bounded SCAN sample with MEMORY USAGE."""

    name = StepAction.REDIS_BIGKEYS
    destructive = False

    async def describe(self, ctx: StepContext) -> str:
        return f"sample {param_int(ctx.step, 'sample', 1000)} keys and report the largest (read-only)"

    async def run(self, ctx: StepContext) -> StepResult:
        sample = param_int(ctx.step, "sample", 1000) or 1000
        top = param_int(ctx.step, "top", 10) or 10
        async with redis_client(ctx) as redis:
            keys = await redis.bigkeys_sample(sample=sample, top=top)
        evidence = {f"top{i + 1}": f"{k.key} ({k.type}, {k.memory_bytes} B)" for i, k in enumerate(keys[:_TOP])}
        if not keys:
            return StepResult(Outcome.DONE, "no keys in the sample", evidence)
        biggest = keys[0]
        return StepResult(
            Outcome.DONE,
            f"largest of {len(keys)} reported keys: {biggest.key} ({biggest.type}, {biggest.memory_bytes} bytes)",
            evidence,
        )


class RedisInfo:
    """`INFO stats` and memory: hit rate, evictions, maxmemory and its policy (the cache configuration)."""

    name = StepAction.REDIS_INFO
    destructive = False

    async def describe(self, ctx: StepContext) -> str:
        async with redis_client(ctx) as redis:
            rate = await redis.cache_hit_rate()
        now = "no lookups yet" if rate is None else f"hit rate {rate:.1%}"
        return f"read INFO stats and memory: hit rate, evictions, maxmemory policy (read-only; now {now})"

    async def run(self, ctx: StepContext) -> StepResult:
        async with redis_client(ctx) as redis:
            info = await redis.info("all")
            rate = await redis.cache_hit_rate()
        evidence = {
            "hitRate": "n/a" if rate is None else f"{rate:.3f}",
            "keyspaceHits": str(info.get("keyspace_hits", 0)),
            "keyspaceMisses": str(info.get("keyspace_misses", 0)),
            "evictedKeys": str(info.get("evicted_keys", 0)),
            "usedMemory": str(info.get("used_memory_human", "?")),
            "maxmemory": str(info.get("maxmemory_human", "?")),
            "maxmemoryPolicy": str(info.get("maxmemory_policy", "?")),
        }
        hit = "no lookups yet" if rate is None else f"hit rate {rate:.1%}"
        return StepResult(
            Outcome.DONE,
            f"{hit}; evicted keys {evidence['evictedKeys']}; memory {evidence['usedMemory']} of "
            f"{evidence['maxmemory']} ({evidence['maxmemoryPolicy']})",
            evidence,
        )
