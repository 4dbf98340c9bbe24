import Synchronization
@testable import GatewayCache

struct LoadFailure: Error, Equatable {
    let tag: Int
}

/// Yields until `condition` holds; bounded so a broken implementation fails instead of hanging.
func yieldUntil(_ condition: () async -> Bool) async -> Bool {
    for _ in 0..<1_000_000 {
        if await condition() { return true }
        await Task.yield()
    }
    return false
}


func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }
