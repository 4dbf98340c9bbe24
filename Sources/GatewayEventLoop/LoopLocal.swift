import Synchronization

/// One object per event loop, made by that loop on first use and touched only by it: state a
/// component keeps per loop (a log batch, a copy of shared settings), so that loops never contend
/// for a lock over it.
///
/// The owner holds its `LoopLocal`, and the objects go with it. Each loop has a slot number, the
/// same in every `LoopLocal`, so finding this loop's object is one thread-local read and an array
/// index: no table lookup, no weak reference, no cast. (A lookup in a per-loop table keyed by the
/// owner cost about 700 instructions, and a request made five of them.) A slot passes to a new
/// loop only after its loop has gone, with a new epoch in the tag, so the new loop makes its own
/// object instead of inheriting the old one's.
public final class LoopLocal<Object: AnyObject>: @unchecked Sendable {
    // @unchecked: slot k is read and written only by the live loop holding slot k (see above).
    @usableFromInline let slots: UnsafeMutablePointer<Slot>
    @usableFromInline let make: @Sendable () -> Object

    @usableFromInline struct Slot {
        @usableFromInline var tag: Int
        @usableFromInline var object: Object?

        @usableFromInline init(tag: Int, object: Object?) {
            self.tag = tag
            self.object = object
        }
    }

    public init(_ make: @escaping @Sendable () -> Object) {
        slots = .allocate(capacity: LoopSlots.count)
        slots.initialize(repeating: Slot(tag: -1, object: nil), count: LoopSlots.count)
        self.make = make
    }

    deinit {
        slots.deinitialize(count: LoopSlots.count)
        slots.deallocate()
    }

    /// The calling loop's object, made now if it has none yet; nil off the loops, and on a loop
    /// that found every slot taken (more than `LoopSlots.count` live loops), which callers treat
    /// alike.
    @inlinable public var onCurrentLoop: Object? { object(forTag: EventLoop.currentLocalTag) }

    /// The object of the loop tagged `tag` (its `localTag`); called on that loop's thread only.
    @inlinable func object(forTag tag: Int) -> Object? {
        guard tag >= 0 else { return nil }
        let slot = tag & LoopSlots.slotMask
        if slots[slot].tag == tag, let object = slots[slot].object { return object }
        let made = make()
        slots[slot] = Slot(tag: tag, object: made)
        return made
    }
}

/// Numbers the live loops for `LoopLocal`: at most `count` at a time, each number reused only after
/// its loop has gone, and each taking of a number tagged with a new epoch.
@usableFromInline enum LoopSlots {
    /// A tag's low bits are the slot number; the epoch is above them.
    @inlinable static var slotBits: Int { 8 }
    @inlinable static var count: Int { 1 << slotBits }
    @inlinable static var slotMask: Int { count - 1 }

    private struct Pool {
        var free: [Int] = []
        var next = 0
        var epochs = [Int](repeating: 0, count: LoopSlots.count)
    }

    private static let pool = Mutex(Pool())

    /// A tag for a new loop, or -1 when every slot is held.
    static func take() -> Int {
        pool.withLock { pool in
            let slot: Int
            if let reused = pool.free.popLast() {
                slot = reused
            } else if pool.next < count {
                slot = pool.next
                pool.next += 1
            } else {
                return -1
            }
            pool.epochs[slot] &+= 1
            return pool.epochs[slot] << slotBits | slot
        }
    }

    static func give(back tag: Int) {
        guard tag >= 0 else { return }
        pool.withLock { $0.free.append(tag & slotMask) }
    }
}
