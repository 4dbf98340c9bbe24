public import GatewayHTTP

/// Ways a response can be made to fail on the wire: the provider simulator reproduces upstream
/// faults with them, and the server's own tests use them. A responder asks for one on its response
/// (`transportFault`); only a server whose configuration sets `injectsTransportFaults` applies it.
/// The gateway's server never does, so the response type itself knows nothing of faults.
public enum TransportFault: Sendable, Equatable {
    /// Close the connection with a TCP reset (SO_LINGER 0) without sending anything.
    case resetConnection
    /// Send the head with the full `Content-Length`, then only the first `afterBytes` of the body,
    /// then close.
    case truncateBody(afterBytes: Int)

    /// The response field that carries the fault from the responder to its server, which removes it.
    static let fieldName = "X-Injected-Transport-Fault"

    init?(fieldValue: String) {
        if fieldValue == "reset" {
            self = .resetConnection
        } else if fieldValue.hasPrefix("truncate="), let bytes = Int(fieldValue.dropFirst("truncate=".count)), bytes >= 0 {
            self = .truncateBody(afterBytes: bytes)
        } else {
            return nil
        }
    }

    var fieldValue: String {
        switch self {
        case .resetConnection: "reset"
        case .truncateBody(let afterBytes): "truncate=\(afterBytes)"
        }
    }
}

extension HTTPResponse {
    /// The fault a server with `injectsTransportFaults` applies instead of delivering this response.
    public var transportFault: TransportFault? {
        get { headers[TransportFault.fieldName].flatMap(TransportFault.init(fieldValue:)) }
        set {
            if let newValue {
                headers.replaceOrAdd(name: TransportFault.fieldName, value: newValue.fieldValue)
            } else {
                headers.remove(name: TransportFault.fieldName)
            }
        }
    }
}
