import Yams

/// Reads a composed YAML tree into typed values, turning every shape mistake into a diagnostic
/// with the file, line and column of the offending node.
struct NodeReader {
    let file: String
    var diagnostics: [Diagnostic] = []

    init(file: String) { self.file = file }

    func location(_ node: Node) -> SourceLocation {
        SourceLocation(file: file, line: node.mark?.line ?? 1, column: node.mark?.column ?? 1)
    }

    mutating func error(_ code: String, _ node: Node, _ message: String, hint: String? = nil) {
        diagnostics.append(Diagnostic(.error, code, at: location(node), message, hint: hint))
    }

    mutating func warning(_ code: String, _ node: Node, _ message: String, hint: String? = nil) {
        diagnostics.append(Diagnostic(.warning, code, at: location(node), message, hint: hint))
    }

    /// A mapping's entries by key, in file order; keys not in `table` (the one list of a
    /// mapping's keys, which the JSON Schema is generated from too) are reported.
    mutating func fields(_ node: Node, _ what: String, keys table: PolicyKeys.Table) -> Fields? {
        let allowed = table.names
        guard case let .mapping(mapping) = node else {
            error("wrong-type", node, "\(what) must be a mapping", hint: "write it as `key: value` lines or `{key: value}`")
            return nil
        }
        var fields = Fields(node: node)
        for (key, value) in mapping {
            guard let name = key.scalar?.string else {
                error("wrong-type", key, "\(what) keys must be plain strings")
                continue
            }
            guard allowed.contains(name) else {
                let hint = Suggest.didYouMean(name, in: allowed) ?? "allowed keys: \(allowed.joined(separator: ", "))"
                error("unknown-key", key, "unknown key '\(name)' in \(what)", hint: hint)
                continue
            }
            fields.entries.append((name, key, value))
        }
        return fields
    }

    func isNull(_ node: Node) -> Bool {
        guard case let .scalar(scalar) = node else { return false }
        return scalar.style == .plain && ["", "~", "null", "Null", "NULL"].contains(scalar.string)
    }

    mutating func string(_ node: Node, _ what: String) -> Located<String>? {
        guard case let .scalar(scalar) = node, !isNull(node) else {
            error("wrong-type", node, "\(what) must be a string")
            return nil
        }
        return Located(scalar.string, at: location(node))
    }

    mutating func bool(_ node: Node, _ what: String) -> Bool? {
        if case let .scalar(scalar) = node {
            switch scalar.string {
            case "true", "True", "TRUE": return true
            case "false", "False", "FALSE": return false
            default: break
            }
        }
        error("wrong-type", node, "\(what) must be true or false")
        return nil
    }

    mutating func int(_ node: Node, _ what: String, range: ClosedRange<Int> = 0...Int(UInt32.max - 1)) -> Located<Int>? {
        guard case let .scalar(scalar) = node, let value = Int(scalar.string) else {
            error("wrong-type", node, "\(what) must be a whole number")
            return nil
        }
        guard range.contains(value) else {
            error("out-of-range", node, "\(what) must be between \(range.lowerBound) and \(range.upperBound), not \(value)")
            return nil
        }
        return Located(value, at: location(node))
    }

    /// A list of strings; a single scalar is accepted as a one-element list.
    mutating func stringList(_ node: Node, _ what: String) -> [Located<String>]? {
        switch node {
        case let .sequence(sequence):
            var values: [Located<String>] = []
            for item in sequence {
                if let value = string(item, "each entry of \(what)") { values.append(value) }
            }
            return values
        case .scalar where !isNull(node):
            return string(node, what).map { [$0] }
        default:
            error("wrong-type", node, "\(what) must be a list of strings", hint: "write `[a, b]` or one `- a` line per entry")
            return nil
        }
    }

    mutating func sequence(_ node: Node, _ what: String) -> [Node]? {
        guard case let .sequence(sequence) = node else {
            if isNull(node) { return [] }
            error("wrong-type", node, "\(what) must be a list")
            return nil
        }
        return Array(sequence)
    }
}

/// The recognised entries of one mapping, in file order.
struct Fields {
    let node: Node
    var entries: [(name: String, key: Node, value: Node)] = []

    init(node: Node) { self.node = node }

    subscript(name: String) -> Node? { entries.first { $0.name == name }?.value }

    func key(_ name: String) -> Node? { entries.first { $0.name == name }?.key }

    func has(_ name: String) -> Bool { self[name] != nil }
}
