import GatewayProviders

/// The text of one index's executions (provider execution id, name, searchable values) in one
/// contiguous buffer, and the map from provider execution id to where that text lies.
///
/// A Swift string of more than 15 UTF-8 bytes, and every array of strings, is a heap block of its
/// own (a header, malloc's rounding and bookkeeping), and at an organisation's size those blocks
/// cost more than the text they hold; interleaved with a parser's short-lived blocks they also
/// keep memory the allocator cannot give back. Here an execution's text is one *block* of the
/// buffer, named by its offset, and the id map is an open-addressing table of offsets hashed on
/// the id's bytes in the buffer: no per-execution heap block at all.
///
/// A block, from its offset:
/// - the execution's creation instant, 8 bytes little-endian (what the id map finds it by);
/// - the id: a LEB128 length, then its UTF-8 bytes;
/// - the name: a LEB128 of its length + 1 (0: no name), then its bytes;
/// - the searchable values: a LEB128 count, then each value as a LEB128 length and its bytes.
///
/// Blocks are only appended. A block whose execution's text changed is abandoned and counted in
/// `abandonedBytes`; the index copies the live blocks into a new pool when too many are.
struct ExecutionTextPool: Sendable {
    private(set) var bytes: ContiguousArray<UInt8> = []
    /// Open addressing, linear probing: each slot holds a block's offset + 1 (0: empty). Its size
    /// is a power of two, at most three quarters full.
    private var slots: ContiguousArray<Int> = []
    /// Ids the map holds.
    private(set) var idCount = 0
    /// Bytes of blocks no execution uses any more.
    private(set) var abandonedBytes = 0

    init(reservingBytes capacity: Int = 0, ids: Int = 0) {
        bytes.reserveCapacity(capacity)
        if ids > 0 { rebuildSlots(count: Self.slotCount(for: ids)) }
    }

    /// What the pool holds in memory: the buffer and the id map, as allocated.
    var estimatedBytes: Int {
        bytes.capacity + slots.capacity * MemoryLayout<Int>.stride
    }

    // MARK: - Writing

    /// Appends a block for `execution`'s text at `instant` and returns its offset. The id map
    /// does not know it until it is `register`ed.
    mutating func append(instant: Int64, id: String, name: String?, searchableValues: [String]) -> Int {
        let block = bytes.count
        withUnsafeBytes(of: instant.littleEndian) { bytes.append(contentsOf: $0) }
        appendText(id)
        if let name {
            Self.appendLEB128(name.utf8.count + 1, to: &bytes)
            bytes.append(contentsOf: name.utf8)
        } else {
            Self.appendLEB128(0, to: &bytes)
        }
        Self.appendLEB128(searchableValues.count, to: &bytes)
        for value in searchableValues { appendText(value) }
        return block
    }

    private mutating func appendText(_ text: String) {
        Self.appendLEB128(text.utf8.count, to: &bytes)
        bytes.append(contentsOf: text.utf8)
    }

    /// Appends a copy of `block` of `other` and returns its offset here (not registered).
    mutating func append(block: Int, of other: ExecutionTextPool) -> Int {
        let start = bytes.count
        other.bytes.withUnsafeBufferPointer { source in
            let end = Self.end(of: block, in: source)
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: source[block..<end]))
        }
        return start
    }

    mutating func setInstant(_ instant: Int64, of block: Int) {
        bytes.withUnsafeMutableBytes { $0.storeBytes(of: instant.littleEndian, toByteOffset: block, as: Int64.self) }
    }

    /// Makes `block` the one its id maps to, and returns the block it replaces there, if any
    /// (which is then counted as abandoned unless it is `block` itself).
    @discardableResult
    mutating func register(_ block: Int) -> Int? {
        if (idCount + 1) * 4 > slots.count * 3 { rebuildSlots(count: Swift.max(16, slots.count * 2)) }
        // Moved out while it is written, so that it is written in place (not copied) beside reads of `bytes`.
        var table = slots
        slots = []
        defer { slots = table }
        let replaced: Int? = bytes.withUnsafeBufferPointer { buffer in
            let id = Self.idBytes(of: block, in: buffer)
            return table.withUnsafeMutableBufferPointer { slots in
                var slot = Self.firstSlot(for: id, slotCount: slots.count)
                while true {
                    let occupant = slots[slot]
                    if occupant == 0 {
                        slots[slot] = block + 1
                        return nil
                    }
                    if Self.idBytes(of: occupant - 1, in: buffer).elementsEqual(id) {
                        slots[slot] = block + 1
                        return occupant - 1
                    }
                    slot = (slot + 1) & (slots.count - 1)
                }
            }
        }
        if let replaced {
            if replaced != block { abandonedBytes += length(of: replaced) }
        } else {
            idCount += 1
        }
        return replaced
    }

    private mutating func rebuildSlots(count: Int) {
        var fresh = ContiguousArray<Int>(repeating: 0, count: count)
        bytes.withUnsafeBufferPointer { buffer in
            fresh.withUnsafeMutableBufferPointer { fresh in
                for occupant in slots where occupant != 0 {
                    var slot = Self.firstSlot(for: Self.idBytes(of: occupant - 1, in: buffer), slotCount: fresh.count)
                    while fresh[slot] != 0 { slot = (slot + 1) & (fresh.count - 1) }
                    fresh[slot] = occupant
                }
            }
        }
        slots = fresh
    }

    /// The smallest power-of-two table that holds `ids` at most three quarters full.
    private static func slotCount(for ids: Int) -> Int {
        var count = 16
        while count * 3 < ids * 4 { count *= 2 }
        return count
    }

    // MARK: - Reading

    /// The block of the execution with this id, if the map holds it.
    func block(forID id: String) -> Int? {
        var id = id
        return id.withUTF8 { wanted in bytes.withUnsafeBufferPointer { block(forID: wanted, in: $0) } }
    }

    /// True when `block` is the one its id maps to (not one a later reading replaced).
    func isCurrent(_ block: Int) -> Bool {
        bytes.withUnsafeBufferPointer { self.block(forID: Self.idBytes(of: block, in: $0), in: $0) == block }
    }

    private func block(forID wanted: UnsafeBufferPointer<UInt8>, in buffer: UnsafeBufferPointer<UInt8>) -> Int? {
        guard !slots.isEmpty else { return nil }
        return slots.withUnsafeBufferPointer { slots in
            var slot = Self.firstSlot(for: wanted, slotCount: slots.count)
            while true {
                let occupant = slots[slot]
                if occupant == 0 { return nil }
                if Self.idBytes(of: occupant - 1, in: buffer).elementsEqual(wanted) { return occupant - 1 }
                slot = (slot + 1) & (slots.count - 1)
            }
        }
    }

    func instant(of block: Int) -> Int64 {
        bytes.withUnsafeBytes { Int64(littleEndian: $0.loadUnaligned(fromByteOffset: block, as: Int64.self)) }
    }

    func id(of block: Int) -> String {
        bytes.withUnsafeBufferPointer { String(decoding: Self.idBytes(of: block, in: $0), as: UTF8.self) }
    }

    /// The block's id, name and searchable values as strings (for a page's records).
    func text(of block: Int) -> (id: String, name: String?, searchableValues: [String]) {
        bytes.withUnsafeBufferPointer { buffer in
            var reader = BlockReader(buffer: buffer, block: block)
            let id = String(decoding: reader.id, as: UTF8.self)
            let name = reader.name.map { String(decoding: $0, as: UTF8.self) }
            var values: [String] = []
            reader.forEachSearchableValue { values.append(String(decoding: $0, as: UTF8.self)) }
            return (id, name, values)
        }
    }

    /// True when `block` holds exactly this text: a new reading of an execution whose text did
    /// not change (a status change) keeps its block.
    func holds(id: String, name: String?, searchableValues: [String], at block: Int) -> Bool {
        bytes.withUnsafeBufferPointer { buffer in
            var reader = BlockReader(buffer: buffer, block: block)
            guard reader.id.elementsEqual(id.utf8) else { return false }
            switch (reader.name, name) {
            case (nil, nil): break
            case (let stored?, let given?): if !stored.elementsEqual(given.utf8) { return false }
            default: return false
            }
            guard reader.searchableValueCount == searchableValues.count else { return false }
            var matches = true
            var position = 0
            reader.forEachSearchableValue { stored in
                if matches, !stored.elementsEqual(searchableValues[position].utf8) { matches = false }
                position += 1
            }
            return matches
        }
    }

    /// How many bytes `block` takes.
    func length(of block: Int) -> Int {
        bytes.withUnsafeBufferPointer { Self.end(of: block, in: $0) - block }
    }

    // MARK: - Layout

    /// Reads one block's parts in order, without copying them.
    struct BlockReader {
        let buffer: UnsafeBufferPointer<UInt8>
        private var offset: Int
        private(set) var searchableValueCount = 0
        /// The id's bytes.
        let id: UnsafeBufferPointer<UInt8>
        /// The name's bytes; nil when there is none.
        let name: UnsafeBufferPointer<UInt8>?

        init(buffer: UnsafeBufferPointer<UInt8>, block: Int) {
            self.buffer = buffer
            offset = block + MemoryLayout<Int64>.size
            id = Self.text(in: buffer, at: &offset)
            let nameLengthPlusOne = ExecutionTextPool.readLEB128(buffer, at: &offset)
            if nameLengthPlusOne == 0 {
                name = nil
            } else {
                let end = Swift.min(buffer.count, offset + nameLengthPlusOne - 1)
                name = UnsafeBufferPointer(rebasing: buffer[offset..<end])
                offset = end
            }
            searchableValueCount = ExecutionTextPool.readLEB128(buffer, at: &offset)
        }

        /// Calls `body` with each searchable value's bytes, in order; afterwards `end` is known.
        mutating func forEachSearchableValue(_ body: (UnsafeBufferPointer<UInt8>) -> Void) {
            for _ in 0..<searchableValueCount { body(Self.text(in: buffer, at: &offset)) }
            searchableValueCount = 0
        }

        /// Where the block ends (once the searchable values were read).
        var end: Int { offset }

        private static func text(in buffer: UnsafeBufferPointer<UInt8>, at offset: inout Int) -> UnsafeBufferPointer<UInt8> {
            let length = ExecutionTextPool.readLEB128(buffer, at: &offset)
            let end = Swift.min(buffer.count, offset + length)
            defer { offset = end }
            return UnsafeBufferPointer(rebasing: buffer[offset..<end])
        }
    }

    /// The id's bytes of `block`: what orders executions of one instant and what the map hashes.
    static func idBytes(of block: Int, in buffer: UnsafeBufferPointer<UInt8>) -> UnsafeBufferPointer<UInt8> {
        var offset = block + MemoryLayout<Int64>.size
        let length = readLEB128(buffer, at: &offset)
        return UnsafeBufferPointer(rebasing: buffer[offset..<Swift.min(buffer.count, offset + length)])
    }

    private static func end(of block: Int, in buffer: UnsafeBufferPointer<UInt8>) -> Int {
        var reader = BlockReader(buffer: buffer, block: block)
        reader.forEachSearchableValue { _ in }
        return reader.end
    }

    private static func firstSlot(for id: UnsafeBufferPointer<UInt8>, slotCount: Int) -> Int {
        // Hasher is seeded per process: ids chosen by an upstream cannot be made to collide.
        var hasher = Hasher()
        hasher.combine(bytes: UnsafeRawBufferPointer(id))
        return hasher.finalize() & (slotCount - 1)
    }

    static func appendLEB128(_ value: Int, to bytes: inout ContiguousArray<UInt8>) {
        var rest = UInt(bitPattern: value)
        while rest >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: rest) | 0x80)
            rest >>= 7
        }
        bytes.append(UInt8(truncatingIfNeeded: rest))
    }

    static func readLEB128(_ buffer: UnsafeBufferPointer<UInt8>, at offset: inout Int) -> Int {
        var value: UInt = 0
        var shift: UInt = 0
        while offset < buffer.count {
            let byte = buffer[offset]
            offset += 1
            value |= UInt(byte & 0x7F) << shift
            if byte < 0x80 { break }
            shift += 7
        }
        return Int(bitPattern: value)
    }
}

/// The `q` filter evaluated on indexed executions where their text lies in the pool, so that a
/// search scan does not build strings for every execution it passes.
///
/// The meaning is `ExecutionFilter.matches`'s (case-insensitive substrings of the unified id or a
/// searchable value). Where bytes and that meaning provably agree (a term that is ASCII once
/// lowercased, text that is ASCII without a carriage return, so that every byte is one
/// character and lowercasing maps A–Z only), bytes are compared in place; anything else is
/// handed to `ExecutionFilter.matches` itself.
struct PooledTextSearch {
    private let terms: [(term: String, asciiNeedle: [UInt8]?)]
    /// `<provider>:`, the start of every unified id; nil when it is not plain ASCII.
    private let idPrefix: [UInt8]?

    init(terms: [String], provider: String) {
        self.terms = terms.map { term in
            let needle = Array(term.lowercased().utf8)
            return (term, !needle.isEmpty && needle.allSatisfy { $0 < 0x80 } ? needle : nil)
        }
        let prefix = Array((provider + ":").utf8)
        idPrefix = prefix.allSatisfy { $0 < 0x80 && $0 != 0x0D } ? prefix : nil
    }

    /// True when one of the terms is found (always when there are none).
    func matches(_ execution: IndexedExecutionView) -> Bool {
        guard !terms.isEmpty else { return true }
        return execution.pool.bytes.withUnsafeBufferPointer { pool in
            terms.contains { term, needle in
                guard let needle, let idPrefix else {
                    return ExecutionFilter(searchTerms: [term]).matches(execution)
                }
                var reader = ExecutionTextPool.BlockReader(buffer: pool, block: execution.record.text)
                var plain = Self.isPlainASCII(reader.id)
                var found = plain && Self.contains(needle, in: idPrefix, reader.id)
                reader.forEachSearchableValue { value in
                    guard !found, plain else { return }
                    if !Self.isPlainASCII(value) {
                        plain = false
                    } else if Self.contains(needle, in: [], value) {
                        found = true
                    }
                }
                if found { return true }
                return plain ? false : ExecutionFilter(searchTerms: [term]).matches(execution)
            }
        }
    }

    private static func isPlainASCII(_ text: UnsafeBufferPointer<UInt8>) -> Bool {
        text.allSatisfy { $0 < 0x80 && $0 != 0x0D }
    }

    /// Whether `needle` (lowercase ASCII) occurs in `head` followed by `tail`, ignoring ASCII case.
    private static func contains(_ needle: [UInt8], in head: [UInt8], _ tail: UnsafeBufferPointer<UInt8>) -> Bool {
        let total = head.count + tail.count
        guard needle.count <= total else { return false }
        func lowered(_ position: Int) -> UInt8 {
            let byte = position < head.count ? head[position] : tail[position - head.count]
            return byte &- 0x41 < 26 ? byte | 0x20 : byte
        }
        for start in 0...(total - needle.count) {
            var offset = 0
            while offset < needle.count, lowered(start + offset) == needle[offset] { offset += 1 }
            if offset == needle.count { return true }
        }
        return false
    }
}
