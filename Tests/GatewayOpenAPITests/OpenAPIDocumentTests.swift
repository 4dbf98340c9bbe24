import Foundation
@testable import GatewayOpenAPI
import Testing

@Suite struct OpenAPIDocumentTests {
    /// `openapi/gateway.yaml` in the package root, found from this file's own path.
    static let sourceURL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()  // GatewayOpenAPITests
        .deletingLastPathComponent()  // Tests
        .deletingLastPathComponent()  // package root
        .appendingPathComponent("openapi/gateway.yaml")

    @Test func embeddedDocumentIsByteForByteTheYAMLFile() throws {
        let data = try #require(
            FileManager.default.contents(atPath: Self.sourceURL.path),
            "cannot read \(Self.sourceURL.path)"
        )
        let source = [UInt8](data)
        let embedded = OpenAPIDocument.bytes
        guard embedded != source else { return }
        let firstDifference = zip(source, embedded).enumerated().first { $0.element.0 != $0.element.1 }?.offset
            ?? min(source.count, embedded.count)
        let line = source.prefix(firstDifference).count { $0 == UInt8(ascii: "\n") } + 1
        Issue.record("""
            Sources/GatewayOpenAPI/OpenAPIDocument.swift differs from openapi/gateway.yaml \
            (first difference at byte \(firstDifference), line \(line); \(embedded.count) vs \(source.count) bytes): \
            run scripts/embed-openapi
            """)
    }

    /// The served variants differ from the file in the top-level requirement (`auth.mode: none`)
    /// and the provider enum alone, so the texts they extend must stay in the file exactly once.
    @Test func servedVariantsChangeOnlyTheRequirementAndTheProviderNames() {
        #expect(OpenAPIDocument.yaml.ranges(of: OpenAPIDocument.clientKeyRequirement).count == 1)
        #expect(OpenAPIDocument.yaml.ranges(of: OpenAPIDocument.providerNamePattern).count == 1)
        let enumLine = "      enum: ['kaizen', 'true', '1']\n"
        let withKeys = String(decoding: OpenAPIDocument.served(requiringClientKey: true, providerNames: ["kaizen", "true", "1"]), as: UTF8.self)
        #expect(withKeys.contains(OpenAPIDocument.providerNamePattern + enumLine))
        #expect(withKeys.replacing(enumLine, with: "") == OpenAPIDocument.yaml)
        let anonymous = String(decoding: OpenAPIDocument.served(requiringClientKey: false, providerNames: ["kaizen", "true", "1"]), as: UTF8.self)
        #expect(anonymous.ranges(of: OpenAPIDocument.noRequirement).count == 1)
        #expect(!anonymous.contains("\nsecurity:\n"))
        #expect(anonymous.replacing(OpenAPIDocument.noRequirement, with: OpenAPIDocument.clientKeyRequirement)
            .replacing(enumLine, with: "") == OpenAPIDocument.yaml)
    }

    @Test func servedBytesAreTheUTF8OfTheDocument() {
        #expect(OpenAPIDocument.bytes == Array(OpenAPIDocument.yaml.utf8))
        #expect(OpenAPIDocument.yaml.hasPrefix("openapi: 3.1.0\n"))
    }
}
