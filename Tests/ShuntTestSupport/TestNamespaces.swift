import Foundation

/// $SHUNT_TEST_NETNS_PREFIX: a prefix for every namespace the tests create, so that runs from
/// several checkouts on one machine can tell theirs apart (and clean up only theirs).
public let testNamespacePrefix: String? = ProcessInfo.processInfo.environment["SHUNT_TEST_NETNS_PREFIX"].flatMap {
    $0.isEmpty ? nil : $0
}
