import GatewayEventLoop
public import GatewayCache
import GatewayCrypto
import GatewayJSON
public import GatewayProviders
import Synchronization

/// Where `ExecutionsService` keeps rendered `GET /executions` pages.
///
/// A cache hit of the providers' response cache still re-parses the upstream JSON, re-merges and
/// re-renders the page on every request; a page-level entry skips all of that and answers with
/// stored bytes. See `RenderedPageCache` for what is stored and when.
public enum PageCaching: Sendable {
    /// Every list request is merged and rendered afresh.
    case disabled
    /// Pages go into the store of the response cache every provider's fetcher shares (so one
    /// `cache.maxBytes` bounds upstream answers and pages together), judged with the fetchers'
    /// TTLs. Falls back to `disabled` when the providers do not all read through one such cache.
    case sharedWithProviders
    /// Pages go into `store`, judged with the TTLs of `policy`.
    case store(any CacheStore, policy: ProviderCachePolicy)
}

/// What the page cache has done since start, for metrics.
public struct PageCacheStatistics: Sendable, Equatable {
    /// Pages answered from a fresh stored page.
    public var hits = 0
    /// Lookups that found no fresh page (requests with `Cache-Control: no-cache` do not look).
    public var misses = 0
    /// Pages stored.
    public var stores = 0
    /// Pages built but not stored: incomplete, stale, or built from parts that were not fetched
    /// during the request.
    public var notCacheable = 0
    /// Requests that found no stored page and waited for another request building the same one.
    public var coalesced = 0

    public init() {}
}

/// Rendered list pages, keyed by everything that decides their bytes and by who may share them.
///
/// Key: the whole normalised query (limit, providers, filters, include, allowPartial), every
/// provider's cursor state (position and exhaustion, which is what a cursor or its absence comes
/// down to), the resolved provider set, the identity (SHA-256) of the upstream credential used for
/// each of those providers, and a fingerprint of the cursor secret (the stored bytes hold a sealed
/// `nextCursor`). Never the credential itself. Two clients share a page exactly when they would
/// share every upstream answer behind it.
///
/// Value: the rendered `data`, `page` and `complete` bytes, their ETag, the next cursor and, per
/// provider, whether it was called and whether it is exhausted. `providers[]` is rendered per
/// request (`cache: "hit"` and the lookup's real duration).
///
/// A page is stored only when it is complete and nothing in it was served stale, and only for as
/// long as every upstream answer behind it stays fresh, so that it cannot outlive them: until the
/// earliest end of freshness of the answers it was built from (fetched during the request, or read
/// from cache, such as a second page served from a Kaizen list fetched for the first), and never
/// past the building request's start plus the list TTL, or the TTL of any active (not finished)
/// execution's detail joined onto it if shorter. Before this rule pages built from cached parts
/// were not stored; their parts expired a few milliseconds apart, so after the first expiry
/// nearly every request re-rendered its page from cache.
struct RenderedPageCache: Sendable {
    let store: any CacheStore
    let policy: ProviderCachePolicy
    /// Separates pages of gateways with different cursor secrets sharing one store.
    let namespace: String
    private let counters = PageCacheCounters()
    private let builds = PageBuilds()
    private let preparedHits: PreparedHits

    /// At most this share of an in-process store's budget (and never more than 4 MiB) goes to
    /// remembered hit answers, on top of the store's own bytes.
    static let preparedHitsShare = 16
    static let preparedHitsMaxBytes = 4 << 20

    init(store: any CacheStore, policy: ProviderCachePolicy, cursorSecret: String) {
        self.store = store
        self.policy = policy
        // Only an in-process store (or a tiered store's in-process level) answers within the
        // millisecond that makes a hit reusable.
        let storeBytes = (store as? MemoryLRUStore)?.maxBytes ?? (store as? TieredCacheStore)?.l1.maxBytes ?? 0
        preparedHits = PreparedHits(budgetBytes: min(Self.preparedHitsMaxBytes, storeBytes / Self.preparedHitsShare))
        namespace = Hex.encode(HMACSHA256.authenticationCode(key: Array(cursorSecret.utf8), message: Array("page-cache".utf8)).prefix(8))
    }

    /// The configured choice resolved against the providers, or nil when pages are not cached.
    static func resolve(_ choice: PageCaching, providers: [ProviderBinding], cursorSecret: String) -> RenderedPageCache? {
        switch choice {
        case .disabled:
            return nil
        case .store(let store, let policy):
            return RenderedPageCache(store: store, policy: policy, cursorSecret: cursorSecret)
        case .sharedWithProviders:
            let fetchers = providers.compactMap { ($0.provider as? any UpstreamBackedProvider)?.fetcher }
            guard let first = fetchers.first, fetchers.count == providers.count,
                  fetchers.allSatisfy({ $0.cache === first.cache && $0.cachePolicy == first.cachePolicy })
            else { return nil }
            return RenderedPageCache(store: first.cache.store, policy: first.cachePolicy, cursorSecret: cursorSecret)
        }
    }

    var statistics: PageCacheStatistics { counters.snapshot() }

    // MARK: - Keys

    /// `executions:page:` + SHA-256 over the canonical JSON of the key's parts. Provider names
    /// cannot contain `:`, so no provider fetcher's key (which starts with a provider name and a
    /// space) can equal a page key in a shared store.
    func key(query: ListQuery, states: [(name: String, state: ProviderCursorState)], credentialIdentities: [String]) -> String {
        // Canonical JSON written straight to bytes (no value tree: this runs on every request).
        var writer = JSONWriter(capacity: 512)
        writer.raw("[\"v1\",")
        writer.string(namespace)
        writer.raw(",")
        writer.raw(String(query.limit))
        writer.raw(",")
        Self.write(query.providers, into: &writer)
        writer.raw(",")
        Self.write(query.filter.statuses.map { $0.map(\.rawValue).sorted() }, into: &writer)
        writer.raw(",")
        writer.optionalString(query.filter.workflowID)
        writer.raw(",")
        writer.raw(query.filter.createdAfter.map { String($0.nanosecondsSinceEpoch) } ?? "null")
        writer.raw(",")
        writer.raw(query.filter.createdBefore.map { String($0.nanosecondsSinceEpoch) } ?? "null")
        writer.raw(",")
        Self.write(query.filter.searchTerms, into: &writer)
        writer.raw(",")
        writer.raw(query.filter.isTest.map { $0 ? "true" : "false" } ?? "null")
        writer.raw(",")
        Self.write(query.include.map(\.rawValue).sorted(), into: &writer)
        writer.raw(query.allowPartial ? ",true" : ",false")
        for (index, entry) in states.enumerated() {
            writer.raw(",[")
            writer.string(entry.name)
            writer.raw(",")
            writer.string(index < credentialIdentities.count ? credentialIdentities[index] : "")
            writer.raw(entry.state.exhausted ? ",true," : ",false,")
            if let position = entry.state.position {
                writer.raw(String(position.last.createdAt.nanosecondsSinceEpoch))
                writer.raw(",")
                writer.string(position.last.id)
                writer.raw(",")
                writer.raw(position.offsetHint.map { String($0) } ?? "null")
            } else {
                writer.raw("null,null,null")
            }
            writer.raw("]")
        }
        writer.raw("]")
        return "executions:page:" + Hex.encode(SHA256.hash(writer.bytes))
    }

    private static func write(_ strings: [String]?, into writer: inout JSONWriter) {
        guard let strings else {
            writer.raw("null")
            return
        }
        writer.raw("[")
        for (index, text) in strings.enumerated() {
            if index > 0 { writer.raw(",") }
            writer.string(text)
        }
        writer.raw("]")
    }

    // MARK: - Lookup

    /// The hit answer from the page stored under `key`, if the page is fresh at `now()`.
    ///
    /// An in-process store answers without suspending, so a hit is answered on the caller's
    /// thread (the event loop); a shared store suspends for its round trip.
    ///
    /// A page served again within the same millisecond of lookup time (its `durationMs` 0, as
    /// nearly every in-process hit is) gets the answer rendered the first time: the same bytes.
    nonisolated(nonsending) func answer(_ key: String, now: () -> UInt64) async -> ExecutionsAnswer? {
        let started = now()
        guard let entry = await store.lookup(key), started < entry.freshUntil else {
            counters.count(\.misses)
            return nil
        }
        if let prepared = preparedHits.answer(for: key, source: entry.value), now() &- started < 1_000_000 {
            counters.count(\.hits)
            return prepared
        }
        guard let page = RenderedPage(decoding: entry.value) else {
            counters.count(\.misses)
            return nil
        }
        counters.count(\.hits)
        let duration = now() &- started
        var answer = page.answer(cache: .hit, durationNanoseconds: duration)
        if duration < 1_000_000 {
            answer.sharedResponse = SharedResponse()
            preparedHits.remember(answer, for: key, source: entry.value)
        }
        return answer
    }

    // MARK: - Storing

    /// Until when a page built from these parts may be served, or nil when it may not be stored.
    ///
    /// Never past the list TTL counted from `requestStarted` (everything fetched for the request
    /// was stored no earlier), nor past the detail TTL of an active execution joined onto it, nor
    /// past `partsFreshUntil`: the earliest end of freshness of every upstream answer the page was
    /// built from, fetched or cached (recorded by the fetchers through `PartFreshness`). Cached or
    /// stale parts whose freshness nobody recorded make a page unstorable; a part served stale
    /// records a freshness already past (stale-if-error), or a moment (an index answering while
    /// its refresh runs), so such a page is not kept, or kept only that moment.
    func freshUntil(
        requestStarted: UInt64,
        complete: Bool,
        reports: [ProviderReport],
        joined: [ExecutionsService.JoinedExecution],
        partsFreshUntil: UInt64?
    ) -> UInt64? {
        guard complete else { return nil }
        var ttl = policy.listTTLNanoseconds
        var readCachedParts = false
        for report in reports {
            switch report.cache {
            case nil: continue   // not called: exhausted before this page
            case .miss?: continue
            case .hit?, .stale?: readCachedParts = true
            }
        }
        for item in joined {
            guard let detail = item.detail else { continue }
            let status = detail.execution.status
            switch detail.cache {
            case .miss:
                ttl = min(ttl, policy.detailTTLNanoseconds(for: status))
            case .hit:
                // A finished execution's record no longer changes; an active one's does.
                if status?.isTerminal != true { readCachedParts = true }
            case .stale:
                return nil
            }
        }
        let byTTL = requestStarted.addingClamped(ttl)
        if let partsFreshUntil { return min(byTTL, partsFreshUntil) }
        return readCachedParts ? nil : byTTL
    }

    /// Stores `page` when `freshUntil` allows; true when it did.
    func store(_ page: RenderedPage, key: String, now: UInt64, freshUntil: UInt64?) async -> Bool {
        guard let freshUntil, now < freshUntil else {
            counters.count(\.notCacheable)
            return false
        }
        await store.store(key, entry: CachedEntry(value: page.encoded(), storedAt: now, freshUntil: freshUntil, staleUntil: freshUntil))
        counters.count(\.stores)
        return true
    }

    // MARK: - One build per page at a time

    /// What a request that found no stored page should do.
    enum BuildTurn: Sendable {
        /// Build the page, then call `finishBuild` (on every path).
        case build
        /// Another request built and stored it meanwhile.
        case built(RenderedPage)
        /// Another request built it, but it could not be stored (incomplete, or built from stale
        /// parts): build one's own.
        case buildOwn
    }

    /// When a page expires, every request in flight for it misses at once; without this each of
    /// them would decode the cached upstream answers and render the same page (the upstream calls
    /// themselves are already coalesced by the response cache). A waiter whose task is cancelled
    /// (its client went away) stops waiting at once, with `.buildOwn`, and finds its own fetches
    /// cancelled.
    func turn(for key: String) async -> BuildTurn {
        let waiterID = builds.nextWaiterID.add(1, ordering: .relaxed).newValue
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<BuildTurn, Never>) in
                enum Role { case builder, waiter, cancelled }
                let role = builds.waiters.withLock { waiting -> Role in
                    // Under the lock `onCancel` also takes: it either finds this waiter or this sees it.
                    if Task.isCancelled { return .cancelled }
                    if waiting[key] != nil {
                        waiting[key]?[waiterID] = continuation
                        return .waiter
                    }
                    waiting[key] = [:]
                    return .builder
                }
                switch role {
                case .builder: continuation.resume(returning: .build)
                case .waiter: counters.count(\.coalesced)
                case .cancelled: continuation.resume(returning: .buildOwn)
                }
            }
        } onCancel: {
            let continuation = builds.waiters.withLock { $0[key]?.removeValue(forKey: waiterID) }
            continuation?.resume(returning: .buildOwn)
        }
    }

    /// Ends the build `turn(for:)` handed out, releasing the requests that waited for it.
    func finishBuild(_ key: String, storedPage: RenderedPage?) {
        let waiters = builds.waiters.withLock { $0.removeValue(forKey: key) ?? [:] }
        for waiter in waiters.values {
            waiter.resume(returning: storedPage.map(BuildTurn.built) ?? .buildOwn)
        }
    }
}

private final class PageBuilds: Sendable {
    /// Per page key being built, the requests waiting for it by waiter id.
    let waiters = Mutex<[String: [UInt64: CheckedContinuation<RenderedPageCache.BuildTurn, Never>]]>([:])
    let nextWaiterID = Atomic<UInt64>(0)
}

/// One stored page: what `Renderer.listDocument` produced before `providers`.
struct RenderedPage: Sendable, Equatable {
    struct ProviderPart: Sendable, Equatable {
        var name: String
        /// The provider was called for this page (not already exhausted).
        var called: Bool
        var exhausted: Bool
        /// When the provider's index was last brought up to date (RFC 3339), for `providers[].asOf`.
        var dataAsOf: String? = nil
    }

    /// `{"data":[…],"page":{…},"complete":true` — the bytes the ETag covers. A slice: a page
    /// decoded from the store shares the stored bytes instead of copying them.
    var head: ArraySlice<UInt8>
    var entityTag: String
    var nextCursor: String?
    var providers: [ProviderPart]

    /// The answer for a request served from this page, `providers[]` rendered for it: `hit` from
    /// a stored page, `miss` for a request that waited while another one built it. The same for
    /// every request with the same disposition and duration.
    func answer(cache: CacheDisposition, durationNanoseconds: UInt64) -> ExecutionsAnswer {
        let reports = providers.map { part in
            ProviderReport(
                name: part.name, error: nil, cache: part.called ? cache : nil,
                durationMilliseconds: Int64(durationNanoseconds / 1_000_000), exhausted: part.exhausted,
                dataAsOf: part.dataAsOf
            )
        }
        var writer = JSONWriter(capacity: head.count + 64 + 80 * reports.count)
        writer.raw(head)
        // A stored page has no provider errors, so nothing in it names the request.
        Renderer.writeProviders(reports, requestID: "", into: &writer)
        return ExecutionsAnswer(body: writer.bytes, entityTag: entityTag, cache: cache, nextCursor: nextCursor)
    }

    // MARK: Stored form

    // A fixed binary layout (not JSON: the head is already JSON and would need escaping):
    // "EGP1", then length-prefixed (UInt32 little-endian) ETag, next cursor (flag byte first),
    // provider count (UInt32) and per provider name + flags byte, then the head to the end.
    private static let magic = Array("EGP1".utf8)

    func encoded() -> [UInt8] {
        var bytes = Self.magic
        bytes.reserveCapacity(head.count + 128 + providers.count * 24)
        Self.append(entityTag, to: &bytes)
        if let nextCursor {
            bytes.append(1)
            Self.append(nextCursor, to: &bytes)
        } else {
            bytes.append(0)
        }
        Self.append(UInt32(providers.count), to: &bytes)
        for part in providers {
            Self.append(part.name, to: &bytes)
            bytes.append((part.called ? 1 : 0) | (part.exhausted ? 2 : 0) | (part.dataAsOf != nil ? 4 : 0))
            if let dataAsOf = part.dataAsOf { Self.append(dataAsOf, to: &bytes) }
        }
        bytes.append(contentsOf: head)
        return bytes
    }

    init(head: ArraySlice<UInt8>, entityTag: String, nextCursor: String?, providers: [ProviderPart]) {
        self.head = head
        self.entityTag = entityTag
        self.nextCursor = nextCursor
        self.providers = providers
    }

    /// nil for anything that is not a page this type encoded (a store shared with other
    /// software, or corrupted): the caller then renders afresh.
    init?(decoding bytes: [UInt8]) {
        var reader = ByteReader(bytes: bytes)
        guard reader.take(Self.magic.count) == Self.magic[...],
              let entityTag = reader.string(),
              let hasCursor = reader.byte(), hasCursor <= 1
        else { return nil }
        var nextCursor: String?
        if hasCursor == 1 {
            guard let cursor = reader.string() else { return nil }
            nextCursor = cursor
        }
        guard let count = reader.uint32(), Int(count) <= bytes.count else { return nil }
        var providers: [ProviderPart] = []
        for _ in 0..<count {
            guard let name = reader.string(), let flags = reader.byte(), flags <= 7 else { return nil }
            var dataAsOf: String?
            if flags & 4 != 0 {
                guard let instant = reader.string() else { return nil }
                dataAsOf = instant
            }
            providers.append(ProviderPart(name: name, called: flags & 1 != 0, exhausted: flags & 2 != 0, dataAsOf: dataAsOf))
        }
        self.init(head: reader.rest(), entityTag: entityTag, nextCursor: nextCursor, providers: providers)
    }

    private static func append(_ value: UInt32, to bytes: inout [UInt8]) {
        for shift in stride(from: 0, to: 32, by: 8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt32(shift))) }
    }

    private static func append(_ text: String, to bytes: inout [UInt8]) {
        append(UInt32(text.utf8.count), to: &bytes)
        bytes.append(contentsOf: text.utf8)
    }
}

/// Reads the stored form; every read is bounds-checked and answers nil past the end.
private struct ByteReader {
    let bytes: [UInt8]
    var offset = 0

    mutating func take(_ count: Int) -> ArraySlice<UInt8>? {
        guard count >= 0, count <= bytes.count - offset else { return nil }
        defer { offset += count }
        return bytes[offset..<offset + count]
    }

    mutating func byte() -> UInt8? { take(1)?.first }

    mutating func uint32() -> UInt32? {
        guard let slice = take(4) else { return nil }
        return slice.reversed().reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
    }

    mutating func string() -> String? {
        guard let length = uint32(), let slice = take(Int(length)) else { return nil }
        // ASCII (ETags, cursors, provider names) needs no validation; the generic validating
        // initialiser costs a metadata lookup per call.
        if slice.allSatisfy({ $0 < 0x80 }) { return String(decoding: slice, as: UTF8.self) }
        return String(validating: slice, as: UTF8.self)
    }

    func rest() -> ArraySlice<UInt8> { bytes[offset...] }
}

private final class PageCacheCounters: Sendable {
    private let state = Mutex(PageCacheStatistics())

    func count(_ field: any WritableKeyPath<PageCacheStatistics, Int> & Sendable) {
        state.withLock { $0[keyPath: field] += 1 }
    }

    func snapshot() -> PageCacheStatistics { state.withLock { $0 } }
}
