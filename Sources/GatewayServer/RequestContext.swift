import GatewayHTTP

/// A typed slot in `RequestContext`, declared by whichever module owns the value
/// (for example the authenticated client, set by the auth middleware and read by the API).
public protocol RequestContextKey {
    associatedtype Value: Sendable
}

/// Per-request facts that are not part of the HTTP message.
///
/// A value type, handed down the chain as a `consuming` parameter: a middleware adds its facts to
/// the context it was given and passes it on with `consume`, so the slots move from layer to layer
/// and are added to in place. (Passed as a copy, the first fact each layer added copied every slot
/// before it: five array copies on every request.) A layer that reads the context after its `next`
/// returns takes what it needs first.
public struct RequestContext: Sendable {
    /// The peer's address as the socket reports it ("127.0.0.1", "::1").
    public var remoteAddress: String
    /// Identifies the connection in logs; unique within the process.
    public var connectionID: UInt64
    /// Monotonic nanoseconds when the loop learned of the readiness that completed the request's
    /// head (the start of that loop iteration; for a pipelined request, of the iteration that
    /// dispatched it): what the gateway's request latency is measured from.
    public var receivedAtNanoseconds: UInt64
    /// Path parameters filled in by the router (`/executions/{id}` -> `["id": ...]`).
    public var pathParameters: [String: String]
    /// The route template that matched, for metrics and logs ("/executions/{id}"), or nil.
    public var routeTemplate: String?

    /// A handful of slots per request: a linear scan over a small array beats hashing into a
    /// dictionary (this is read and written a dozen times for every request). Each value sits in a
    /// box of its key's value type, so a read is a pointer cast rather than a runtime type check.
    ///
    /// Inlinable (with the storage it touches), so that callers get it specialised for their key:
    /// the box's class metadata is then looked up once per key type, not on every store.
    @usableFromInline var values: [(key: ObjectIdentifier, box: any AnyObject & Sendable)]

    @usableFromInline final class Box<Value: Sendable>: Sendable {
        @usableFromInline let value: Value
        @usableFromInline init(_ value: Value) { self.value = value }
    }

    public init(
        remoteAddress: String = "",
        connectionID: UInt64 = 0,
        receivedAtNanoseconds: UInt64 = 0
    ) {
        self.remoteAddress = remoteAddress
        self.connectionID = connectionID
        self.receivedAtNanoseconds = receivedAtNanoseconds
        self.pathParameters = [:]
        self.routeTemplate = nil
        self.values = []
    }

    @inlinable
    public subscript<Key: RequestContextKey>(_ key: Key.Type) -> Key.Value? {
        get {
            let wanted = ObjectIdentifier(key)
            // Only this subscript stores, always `Box<Key.Value>` under `Key`'s identifier.
            for slot in values where slot.key == wanted { return unsafeDowncast(slot.box, to: Box<Key.Value>.self).value }
            return nil
        }
        set {
            let wanted = ObjectIdentifier(key)
            guard let index = values.firstIndex(where: { $0.key == wanted }) else {
                if let newValue {
                    if values.isEmpty { values.reserveCapacity(6) }
                    values.append((wanted, Box(newValue)))
                }
                return
            }
            if let newValue {
                values[index].box = Box(newValue)
            } else {
                values.remove(at: index)
            }
        }
    }
}
