import GatewayCrypto
import GatewayEventLoop
public import GatewayIndex
public import GatewayRedis
import Synchronization

/// Provider indexes kept together by replicas in Redis (see `IndexSharing`).
///
/// Keys, under `<prefix>ix:<provider>:<credential identity>:`:
/// - `lease`: the holder's fencing token, `SET NX PX`-style (a script takes the next token from
///   `fence` and sets it only while no lease exists), renewed by the holder, lapsing when it dies;
/// - `fence`: the last token handed out (tokens only grow);
/// - `meta`: the published version (a hash: `version` (at least Redis's clock in µs, so that it
///   grows across a Redis restart that lost it), `published` (Redis time, µs), `age` (µs),
///   `unix`, `header`, `segments` (their SHA-256 digests, concatenated));
/// - `seg:<digest>`: one segment of records, content-addressed, so that a publication writes
///   only the segments that changed (new executions change the newest ones).
/// Publishing checks the token in the same script that writes `meta`: a holder whose lease
/// lapsed cannot overwrite its successor's version. Every key expires `retention` after its last
/// use.
public final class RedisIndexSharing: IndexSharing {
    public let leaseNanoseconds: UInt64
    private let client: RedisClient
    private let keyPrefix: String
    private let retentionMilliseconds: UInt64
    /// Segments take longer than a limit check: a whole index can be megabytes.
    private let transferTimeout: Duration
    /// Digests of the segments this replica published last, per index, which it need not write again.
    private let published = Mutex<[String: Set<[UInt8]>]>([:])

    static let acquireScript = RedisScript(library: "eg_lease_v1", function: "eg_lease_acquire_v1", body: """
        if redis.call('EXISTS', keys[1]) == 1 then return 0 end
        local token = redis.call('INCR', keys[2])
        redis.call('SET', keys[1], token, 'PX', args[1])
        redis.call('PEXPIRE', keys[2], args[2])
        return token
        """)

    static let renewScript = RedisScript(library: "eg_lease_renew_v1", function: "eg_lease_renew_v1", body: """
        if redis.call('GET', keys[1]) ~= args[1] then return 0 end
        return redis.call('PEXPIRE', keys[1], args[2])
        """)

    static let releaseScript = RedisScript(library: "eg_lease_release_v1", function: "eg_lease_release_v1", body: """
        if redis.call('GET', keys[1]) ~= args[1] then return 0 end
        return redis.call('DEL', keys[1])
        """)

    /// keys: lease, meta, then the segments; args: token, retention ms, age µs, unix, header, digests.
    static let publishScript = RedisScript(library: "eg_index_publish_v1", function: "eg_index_publish_v1", body: """
        if redis.call('GET', keys[1]) ~= args[1] then return 0 end
        for position = 3, #keys do
          if redis.call('PEXPIRE', keys[position], args[2]) == 0 then return -1 end
        end
        \(RedisInstants.luaNow)
        -- Versions grow with Redis's clock, so they keep growing after a restart that lost them.
        local version = math.max((tonumber(redis.call('HGET', keys[2], 'version')) or 0) + 1, math.floor(now))
        redis.call('HSET', keys[2], 'version', string.format('%.0f', version), 'published', string.format('%.0f', now),
          'age', args[3], 'unix', args[4], 'header', args[5], 'segments', args[6])
        redis.call('PEXPIRE', keys[2], args[2])
        return version
        """)

    /// keys: meta; args: the version held. Answers {0} or {version, age µs now, unix, header, digests}.
    static let latestScript = RedisScript(library: "eg_index_latest_v1", function: "eg_index_latest_v1", body: """
        local fields = redis.call('HMGET', keys[1], 'version', 'published', 'age', 'unix', 'header', 'segments')
        if not fields[1] or tonumber(fields[1]) <= tonumber(args[1]) then return {0} end
        \(RedisInstants.luaNow)
        local age = tonumber(fields[3]) + math.max(0, now - tonumber(fields[2]))
        return {tonumber(fields[1]), string.format('%.0f', age), fields[4], fields[5], fields[6]}
        """)

    /// - Parameters:
    ///   - retention: how long published versions and leases' fencing counters are kept after
    ///     their last use (the list TTL plus the stale window: an older index is served by no one).
    public init(
        client: RedisClient, keyPrefix: String, lease: Duration = .seconds(10), retention: Duration,
        transferTimeout: Duration = .seconds(2)
    ) {
        self.client = client
        self.keyPrefix = keyPrefix + "ix:"
        leaseNanoseconds = lease.saturatingNanoseconds
        retentionMilliseconds = max(1, retention.saturatingNanoseconds / 1_000_000)
        self.transferTimeout = transferTimeout
    }

    private func key(_ index: String, _ suffix: String) -> [UInt8] { Array((keyPrefix + index + ":" + suffix).utf8) }

    private var leaseMilliseconds: [UInt8] { Array(String(max(1, leaseNanoseconds / 1_000_000)).utf8) }

    public func acquireLease(_ indexKey: String) async -> LeaseAttempt {
        do {
            let reply = try await Self.acquireScript.run(
                on: client, keys: [key(indexKey, "lease"), key(indexKey, "fence")],
                arguments: [leaseMilliseconds, Array(String(retentionMilliseconds).utf8)],
                // A lease taken late is still taken: learn it rather than sync beside its holder.
                waitPastDeadline: true)
            guard let token = RedisInstants.integer(reply) else { return .unavailable }
            return token > 0 ? .acquired(IndexLease(key: indexKey, token: UInt64(token))) : .heldByAnother
        } catch {
            return .unavailable
        }
    }

    public func renewLease(_ lease: IndexLease) async -> Bool {
        let reply = try? await Self.renewScript.run(
            on: client, keys: [key(lease.key, "lease")], arguments: [Array(String(lease.token).utf8), leaseMilliseconds])
        return reply.flatMap(RedisInstants.integer) == 1
    }

    public func releaseLease(_ lease: IndexLease) async {
        _ = try? await Self.releaseScript.run(on: client, keys: [key(lease.key, "lease")], arguments: [Array(String(lease.token).utf8)])
    }

    public func publish(_ indexKey: String, _ publication: IndexPublication, lease: IndexLease) async -> UInt64? {
        let digests = publication.segments.map { SHA256.hash($0) }
        let known = published.withLock { $0[indexKey] ?? [] }
        let retention = Array(String(retentionMilliseconds).utf8)
        do {
            for (digest, segment) in zip(digests, publication.segments) where !known.contains(digest) {
                let reply = try await client.send(
                    [Array("SET".utf8), key(indexKey, "seg:" + Hex.encode(digest)), segment, Array("PX".utf8), retention],
                    timeout: transferTimeout)
                guard reply.errorMessage == nil else { return nil }
            }
            let reply = try await Self.publishScript.run(
                on: client,
                keys: [key(indexKey, "lease"), key(indexKey, "meta")] + digests.map { key(indexKey, "seg:" + Hex.encode($0)) },
                arguments: [
                    Array(String(lease.token).utf8), retention,
                    Array(String(publication.ageNanoseconds / 1_000).utf8), Array(String(publication.refreshedAtUnixSeconds).utf8),
                    publication.header, digests.flatMap { $0 },
                ],
                timeout: transferTimeout)
            guard let version = RedisInstants.integer(reply), version > 0 else {
                // -1: a segment this replica thought was there expired; write them all next time.
                if RedisInstants.integer(reply) == -1 { published.withLock { $0[indexKey] = nil } }
                return nil
            }
            published.withLock { $0[indexKey] = Set(digests) }
            return UInt64(version)
        } catch {
            return nil
        }
    }

    public func latest(_ indexKey: String, newerThan version: UInt64) async -> IndexPublication? {
        do {
            let reply = try await Self.latestScript.run(
                on: client, keys: [key(indexKey, "meta")], arguments: [Array(String(version).utf8)])
            guard case .array(let fields) = reply, fields.count == 5,
                  let newVersion = RedisInstants.integer(fields[0]), newVersion > 0,
                  let ageMicroseconds = fields[1].text.flatMap({ UInt64($0) }),
                  let unix = fields[2].text.flatMap({ Int64($0) }),
                  case .bulk(let header) = fields[3], case .bulk(let digestBytes) = fields[4],
                  digestBytes.count % SHA256.digestByteCount == 0
            else { return nil }
            let digests = stride(from: 0, to: digestBytes.count, by: SHA256.digestByteCount).map {
                Array(digestBytes[$0..<$0 + SHA256.digestByteCount])
            }
            var segments: [[UInt8]] = []
            if !digests.isEmpty {
                let reply = try await client.send(
                    [Array("MGET".utf8)] + digests.map { key(indexKey, "seg:" + Hex.encode($0)) }, timeout: transferTimeout)
                guard case .array(let values) = reply, values.count == digests.count else { return nil }
                for (digest, value) in zip(digests, values) {
                    // Content-addressed: what arrives must be what was published.
                    guard case .bulk(let segment) = value, SHA256.hash(segment) == digest else { return nil }
                    segments.append(segment)
                }
            }
            let (age, overflow) = ageMicroseconds.multipliedReportingOverflow(by: 1_000)
            return IndexPublication(
                version: UInt64(newVersion), header: header, segments: segments, ageNanoseconds: overflow ? .max : age,
                refreshedAtUnixSeconds: unix)
        } catch {
            return nil
        }
    }
}
