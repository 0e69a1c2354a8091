import Foundation
import SwiftProtobuf

extension Message {
    /// Whether this message or any message nested in it, at any depth (a request's context, the
    /// `Timestamp` inside it, every batch item and record), carries fields this build does not
    /// know. Unknown fields anywhere get `UNKNOWN_FIELD`: a newer client's meaning is never
    /// silently dropped.
    public var hasUnknownFieldsAnywhere: Bool {
        var scanner = UnknownFieldScanner()
        try? traverse(visitor: &scanner)
        return scanner.found
    }
}

/// Walks a message and every nested message; notes any unknown field bytes.
private struct UnknownFieldScanner: Visitor {
    var found = false

    mutating func visitUnknown(bytes: Data) throws {
        if !bytes.isEmpty { found = true }
    }

    mutating func visitSingularMessageField<M: Message>(value: M, fieldNumber: Int) throws {
        guard !found else { return }
        try value.traverse(visitor: &self)
    }

    mutating func visitRepeatedMessageField<M: Message>(value: [M], fieldNumber: Int) throws {
        for element in value where !found { try element.traverse(visitor: &self) }
    }

    mutating func visitMapField<KeyType, ValueType>(
        fieldType: _ProtobufMessageMap<KeyType, ValueType>.Type, value: _ProtobufMessageMap<KeyType, ValueType>.BaseType, fieldNumber: Int
    ) throws {
        for element in value.values where !found { try element.traverse(visitor: &self) }
    }

    mutating func visitMapField<KeyType, ValueType: MapValueType>(
        fieldType: _ProtobufMap<KeyType, ValueType>.Type, value: _ProtobufMap<KeyType, ValueType>.BaseType, fieldNumber: Int
    ) throws {}

    mutating func visitMapField<KeyType, ValueType>(
        fieldType: _ProtobufEnumMap<KeyType, ValueType>.Type, value: _ProtobufEnumMap<KeyType, ValueType>.BaseType, fieldNumber: Int
    ) throws where ValueType.RawValue == Int {}

    mutating func visitSingularDoubleField(value: Double, fieldNumber: Int) throws {}
    mutating func visitSingularInt64Field(value: Int64, fieldNumber: Int) throws {}
    mutating func visitSingularUInt64Field(value: UInt64, fieldNumber: Int) throws {}
    mutating func visitSingularBoolField(value: Bool, fieldNumber: Int) throws {}
    mutating func visitSingularStringField(value: String, fieldNumber: Int) throws {}
    mutating func visitSingularBytesField(value: Data, fieldNumber: Int) throws {}
    mutating func visitSingularEnumField<E: Enum>(value: E, fieldNumber: Int) throws {}
}
