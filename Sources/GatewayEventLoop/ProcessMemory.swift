import CGatewaySystem

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
}
