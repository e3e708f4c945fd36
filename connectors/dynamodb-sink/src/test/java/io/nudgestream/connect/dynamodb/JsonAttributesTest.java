package io.nudgestream.connect.dynamodb;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import software.amazon.awssdk.services.dynamodb.model.AttributeValue;

class JsonAttributesTest {

    @Test
    void mapsEveryJsonTypeToItsDynamoDbType() {
        Map<String, AttributeValue> item = JsonAttributes.parseObject(
            "{\"s\":\"text\",\"i\":42,\"f\":-0.5,\"t\":true,\"n\":null,\"l\":[1,\"a\",false],"
                + "\"m\":{\"x\":{\"y\":[]}}}");
        assertEquals(AttributeValue.fromS("text"), item.get("s"));
        assertEquals(AttributeValue.fromN("42"), item.get("i"));
        assertEquals(AttributeValue.fromN("-0.5"), item.get("f"));
        assertEquals(AttributeValue.fromBool(true), item.get("t"));
        assertEquals(AttributeValue.fromNul(true), item.get("n"));
        assertEquals(AttributeValue.fromL(List.of(
            AttributeValue.fromN("1"), AttributeValue.fromS("a"), AttributeValue.fromBool(false))), item.get("l"));
        assertEquals(AttributeValue.fromM(Map.of("x", AttributeValue.fromM(Map.of("y", AttributeValue.fromL(List.of()))))),
            item.get("m"));
        assertEquals(List.of("s", "i", "f", "t", "n", "l", "m"), List.copyOf(item.keySet()));
    }

    @Test
    void keepsTheExactTextOfNumbers() {
        Map<String, AttributeValue> item = JsonAttributes.parseObject(
            "{\"long\":9007199254740993,\"dec\":12345678901234567890.123456789012345678,\"exp\":1.5e-7,"
                + "\"zeros\":10.50}");
        assertEquals("9007199254740993", item.get("long").n());
        assertEquals("12345678901234567890.123456789012345678", item.get("dec").n());
        assertEquals("1.5e-7", item.get("exp").n());
        assertEquals("10.50", item.get("zeros").n());
    }

    @Test
    void rejectsNumbersDynamoDbCannotStore() {
        var tooPrecise = assertThrows(InvalidScoreRecordException.class,
            () -> JsonAttributes.parseObject("{\"score\":1.234567890123456789012345678901234567891}"));
        assertTrue(tooPrecise.getMessage().contains("$.score has 40 significant digits"), tooPrecise.getMessage());
        assertThrows(InvalidScoreRecordException.class, () -> JsonAttributes.parseObject("{\"x\":1e126}"));
        assertThrows(InvalidScoreRecordException.class, () -> JsonAttributes.parseObject("{\"x\":1e-131}"));
        // Trailing zeros do not count, the range ends are accepted.
        JsonAttributes.parseObject("{\"a\":1000000000000000000000000000000000000000000,\"b\":9.9e125,\"c\":1e-130}");
    }

    @Test
    void parsesUtf8Bytes() {
        byte[] bytes = "{\"merchant\":\"Café ☕ 🍩\"}".getBytes(StandardCharsets.UTF_8);
        assertEquals("Café ☕ 🍩", JsonAttributes.parseObject(bytes).get("merchant").s());
    }

    @Test
    void rejectsWhatIsNotOneJsonObject() {
        assertMessage("value is not valid JSON", "{\"a\":");
        assertMessage("value is not valid JSON", "not json");
        assertMessage("value must be a JSON object, got an array", "[1,2]");
        assertMessage("value must be a JSON object, got nothing", "");
        assertMessage("content after its JSON object", "{} {}");
        assertMessage("Duplicate field 'a'", "{\"a\":1,\"a\":2}");
        assertMessage("empty attribute name", "{\"\":1}");
        assertMessage("not valid JSON", "{\"a\":NaN}");
    }

    @Test
    void rejectsInvalidUtf8() {
        byte[] bytes = {'{', '"', 'a', '"', ':', '"', (byte) 0xC3, (byte) 0x28, '"', '}'};
        var e = assertThrows(InvalidScoreRecordException.class, () -> JsonAttributes.parseObject(bytes));
        assertTrue(e.getMessage().contains("UTF-8"), e.getMessage());
    }

    @Test
    void rejectsNestingDeeperThanDynamoDb() {
        JsonAttributes.parseObject("{\"a\":".repeat(32) + "1" + "}".repeat(32));
        String deep = "{\"a\":".repeat(33) + "1" + "}".repeat(33);
        assertMessage("nests deeper", deep);
        assertMessage("nests deeper", "{\"a\":" + "[".repeat(40) + "]".repeat(40) + "}");
    }

    @Test
    void rejectsItemsOverFourHundredKilobytes() {
        String big = "x".repeat(400 * 1024);
        assertMessage("DynamoDB's limit is 409600", "{\"reasons\":\"" + big + "\"}");
        JsonAttributes.parseObject("{\"r\":\"" + "x".repeat(300 * 1024) + "\"}");
    }

    private static void assertMessage(String expected, String json) {
        var e = assertThrows(InvalidScoreRecordException.class, () -> JsonAttributes.parseObject(json));
        assertTrue(e.getMessage().contains(expected), () -> "'" + e.getMessage() + "' lacks '" + expected + "'");
    }
}
