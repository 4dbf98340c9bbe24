import CGatewaySystem
#if canImport(Glibc)
import Glibc
#endif

/// The process's heap as the kernel sees it.
public enum ProcessMemory {
    /// Returns free heap pages to the kernel (glibc `malloc_trim(0)`).
    ///
    /// glibc keeps freed memory in its arenas (one per thread that allocated, up to 8 × cores) and
    /// gives back only what lies at the top of the main heap. A cache that evicts and refills and
    /// pages that decode and drop megabytes leave most of that memory free but resident: measured,
    /// about 60 MiB over a full 64 MiB cache. Trimming releases it. True when anything was released.
    @discardableResult
    public static func returnFreeHeapToKernel() -> Bool {
        cgs_malloc_trim() == 1
    }

    /// Caps glibc's arenas (default 8 × cores) unless `MALLOC_ARENA_MAX` in the environment says
    /// otherwise; call it before the server's threads start. Each arena keeps its own free memory:
    /// with the 64 MiB cache full and churned, two arenas settle a few MiB lower than one per
    /// thread, at no measured cost in requests/s (Benchmarks/RESULTS.md §2). True when applied.
    @discardableResult
    public static func limitAllocatorArenas(
        to arenas: Int,
        environment: ((String) -> String?)? = nil
    ) -> Bool {
        let lookup = environment ?? { name in getenv(name).map { String(cString: $0) } }
        guard lookup("MALLOC_ARENA_MAX") == nil, arenas > 0, let count = Int32(exactly: arenas) else { return false }
        return cgs_set_malloc_arena_limit(count) == 1
    }
}
