import Foundation
import Testing

/// Rules of the code base that a reviewer should not have to count by hand.
@Suite("Repository rules")
struct RepositoryRulesTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let limit = 80

    /// Functions (Swift and BPF C) from their declaration line to their closing brace.
    static func functionLengths(in directory: String, extensions: Set<String>) -> [(String, Int)] {
        let base = root.appendingPathComponent(directory)
        guard let files = FileManager.default.enumerator(atPath: base.path) else { return [] }
        var out: [(String, Int)] = []
        for case let file as String in files where extensions.contains((file as NSString).pathExtension) {
            guard let text = try? String(contentsOf: base.appendingPathComponent(file), encoding: .utf8) else { continue }
            let lines = text.components(separatedBy: "\n")
            for (i, line) in lines.enumerated() where isDeclaration(line, c: !file.hasSuffix(".swift")) {
                if let n = bodyLength(lines, from: i) { out.append(("\(directory)/\(file):\(i + 1)", n)) }
            }
        }
        return out
    }

    static func isDeclaration(_ line: String, c: Bool) -> Bool {
        let code = line.components(separatedBy: "//")[0]
        if c { return code.first.map { $0.isLetter } == true && code.contains("(") && !code.hasSuffix(";") && !code.contains("=") }
        guard let r = code.range(of: #"\b(func|init|deinit)\b"#, options: .regularExpression) else { return false }
        return !code[r.upperBound...].contains("=") || code[r.upperBound...].contains("(")
            && !code.trimmingCharacters(in: .whitespaces).hasPrefix("let ") && !code.contains(" = {")
    }

    /// Lines from `start` to the brace closing the body, or nil for a declaration without one.
    static func bodyLength(_ lines: [String], from start: Int) -> Int? {
        var depth = 0, opened = false
        for j in start..<lines.count {
            let code = lines[j].replacingOccurrences(of: #""([^"\\]|\\.)*""#, with: "\"\"", options: .regularExpression)
                .components(separatedBy: "//")[0]
            if j > start && !opened && (isDeclaration(lines[j], c: false) || code.hasSuffix(";")) { return nil }
            for ch in code {
                if ch == "{" { depth += 1; opened = true } else if ch == "}" { depth -= 1 }
                if depth < 0 { return nil }
            }
            if opened && depth == 0 { return j - start + 1 }
        }
        return nil
    }

    @Test func everyFunctionIsShorterThanTheLimit() {
        let all = Self.functionLengths(in: "Sources", extensions: ["swift"])
            + Self.functionLengths(in: "BPF", extensions: ["c", "h"])
        #expect(all.count > 500, "found only \(all.count) functions: is the scan still reading the tree?")
        let long = all.filter { $0.1 >= Self.limit }.sorted { $0.1 > $1.1 }
        #expect(long.isEmpty, "functions of \(Self.limit) lines or more: \(long.map { "\($0.0) (\($0.1))" })")
    }
}
