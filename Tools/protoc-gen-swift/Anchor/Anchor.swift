// Empty: this package only exists to build swift-protobuf's protoc-gen-swift.
