// Calls one URL many times through the gateway's CurlHTTPClient with a fixed number of calls in
// flight, and prints calls/s and the connections libcurl opened. Driven by scripts/bench-upstream.
//
//   UpstreamClientBench --url http://127.0.0.1:18099/item.json --calls 20000 --in-flight 1,16,64
//
// Output: one line per in-flight level, `inFlight calls failures seconds callsPerSecond connectionsOpened`.
import GatewayUpstream

#if canImport(Glibc)
import Glibc
#endif

struct Options {
    var url = ""
    var calls = 10_000
    var inFlight = [1, 16, 64]
    var warmupCalls = 0
}

func parseOptions() -> Options? {
    var options = Options()
    var arguments = CommandLine.arguments.dropFirst()
    while let name = arguments.popFirst() {
        guard let value = arguments.popFirst() else { return nil }
        switch name {
        case "--url": options.url = value
        case "--calls": guard let calls = Int(value), calls > 0 else { return nil }; options.calls = calls
        case "--warmup": guard let calls = Int(value), calls >= 0 else { return nil }; options.warmupCalls = calls
        case "--in-flight":
            let levels = value.split(separator: ",").compactMap { Int($0) }
            guard !levels.isEmpty, levels.allSatisfy({ $0 > 0 }) else { return nil }
            options.inFlight = levels
        default: return nil
        }
    }
    return options.url.isEmpty ? nil : options
}

func monotonicSeconds() -> Double {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
}

/// Runs `total` calls keeping `inFlight` of them outstanding; returns the failures.
func drive(client: CurlHTTPClient, url: String, total: Int, inFlight: Int) async -> Int {
    await withTaskGroup(of: Bool.self) { group in
        var started = 0
        var failures = 0
        func startOne() {
            started += 1
            group.addTask {
                do {
                    let response = try await client.execute(UpstreamRequest(url: url))
                    return response.status == 200 && !response.body.isEmpty
                } catch {
                    return false
                }
            }
        }
        while started < min(inFlight, total) { startOne() }
        for await succeeded in group {
            if !succeeded { failures += 1 }
            if started < total { startOne() }
        }
        return failures
    }
}

guard let options = parseOptions() else {
    print("usage: UpstreamClientBench --url URL [--calls N] [--warmup N] [--in-flight 1,16,64]")
    exit(2)
}

for level in options.inFlight {
    // A fresh client per level, so its connection count is this level's alone. Connection setup is
    // part of the timed run, as it is for the curl tool run it is compared with.
    let client: CurlHTTPClient
    do {
        client = try CurlHTTPClient()
    } catch {
        print("cannot start the client: \(error)")
        exit(1)
    }
    if options.warmupCalls > 0 {
        _ = await drive(client: client, url: options.url, total: options.warmupCalls, inFlight: level)
    }
    let start = monotonicSeconds()
    let failures = await drive(client: client, url: options.url, total: options.calls, inFlight: level)
    let seconds = monotonicSeconds() - start
    let statistics = client.clientStatistics()
    client.shutdown()
    print(level, options.calls, failures, (seconds * 1000).rounded() / 1000, Int(Double(options.calls) / seconds), statistics.connectionsOpened)
}
