// Scripts compute with Redis's clock (`TIME`) in microseconds, as Lua numbers (doubles: exact to
// well under a microsecond at today's epoch offsets), and answer durations relative to that
// instant as decimal text. Each replica turns them into offsets from its own monotonic clock, so
// replicas never compare their clocks with each other.

import GatewayRedis

enum RedisInstants {
    /// Lua that sets `now` to Redis's clock in microseconds.
    static let luaNow = "local time = redis.call('TIME')\nlocal now = tonumber(time[1]) * 1000000 + tonumber(time[2])"

    /// Nanoseconds as the microseconds a script reads (`"12.345"`).
    static func microsecondsArgument(_ nanoseconds: UInt64) -> [UInt8] {
        Array("\(nanoseconds / 1_000).\(String(nanoseconds % 1_000).leftPadded(to: 3))".utf8)
    }

    /// A script's microseconds (decimal text, possibly negative or fractional) as nanoseconds;
    /// below zero is 0, beyond `UInt64` the maximum; nil for a reply that is not such a number.
    static func nanoseconds(fromMicroseconds reply: RedisReply) -> UInt64? {
        guard let text = reply.text, let microseconds = Double(text), microseconds.isFinite else { return nil }
        let nanoseconds = (microseconds * 1_000).rounded()
        if nanoseconds <= 0 { return 0 }
        return nanoseconds >= 0x1p64 ? .max : UInt64(nanoseconds)
    }

    static func integer(_ reply: RedisReply) -> Int64? {
        if case .integer(let value) = reply { return value }
        return nil
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
