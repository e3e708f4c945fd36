package io.nudgestream.connect.dynamodb;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.core.StreamReadFeature;
import java.io.IOException;
import java.math.BigDecimal;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import software.amazon.awssdk.services.dynamodb.model.AttributeValue;

/**
 * Turns a JSON object into DynamoDB attributes: numbers N (their exact JSON text, so no precision is lost),
 * strings S, booleans BOOL, null NULL, arrays L, objects M.
 *
 * <p>Everything DynamoDB would reject for the whole batch (numbers beyond its 38 digits or its range,
 * nesting deeper than 32, items over 400 KB, empty attribute names, duplicate names) is rejected here
 * for the one record, so one bad record cannot fail the records batched with it.
 */
public final class JsonAttributes {

    static final int MAX_DEPTH = 32;
    static final int MAX_ITEM_BYTES = 400 * 1024;
    static final int MAX_NUMBER_DIGITS = 38;
    static final int MIN_NUMBER_EXPONENT = -130;
    static final int MAX_NUMBER_EXPONENT = 125;

    private static final JsonFactory FACTORY = JsonFactory.builder()
        .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION)
        .build();

    private JsonAttributes() {}

    public static Map<String, AttributeValue> parseObject(byte[] json) {
        try (JsonParser parser = FACTORY.createParser(json)) {
            return parseTop(parser);
        } catch (JsonProcessingException e) {
            throw new InvalidScoreRecordException("value is not valid JSON: " + e.getOriginalMessage()
                + location(e), e);
        } catch (IOException e) {
            throw new InvalidScoreRecordException("value could not be read: " + e.getMessage(), e);
        }
    }

    public static Map<String, AttributeValue> parseObject(String json) {
        return parseObject(json.getBytes(StandardCharsets.UTF_8));
    }

    private static String location(JsonProcessingException e) {
        return e.getLocation() == null ? ""
            : " (line " + e.getLocation().getLineNr() + ", column " + e.getLocation().getColumnNr() + ")";
    }

    private static Map<String, AttributeValue> parseTop(JsonParser parser) throws IOException {
        JsonToken first = parser.nextToken();
        if (first != JsonToken.START_OBJECT) {
            throw new InvalidScoreRecordException("value must be a JSON object, got "
                + (first == null ? "nothing" : describe(first)));
        }
        Map<String, AttributeValue> item = readObject(parser, 1, "");
        JsonToken trailing = parser.nextToken();
        if (trailing != null) {
            throw new InvalidScoreRecordException("value has content after its JSON object: " + describe(trailing));
        }
        int size = itemSize(item);
        if (size > MAX_ITEM_BYTES) {
            throw new InvalidScoreRecordException("item is " + size + " bytes; DynamoDB's limit is "
                + MAX_ITEM_BYTES);
        }
        return item;
    }

    private static Map<String, AttributeValue> readObject(JsonParser parser, int depth, String path)
            throws IOException {
        if (depth > MAX_DEPTH) {
            throw new InvalidScoreRecordException("value nests deeper than DynamoDB's " + MAX_DEPTH
                + " levels at " + displayPath(path));
        }
        Map<String, AttributeValue> map = new LinkedHashMap<>();
        JsonToken token;
        while ((token = parser.nextToken()) == JsonToken.FIELD_NAME) {
            String name = parser.currentName();
            String childPath = path + "." + name;
            if (name.isEmpty()) {
                throw new InvalidScoreRecordException("empty attribute name at " + displayPath(path)
                    + "; DynamoDB needs names of at least one character");
            }
            map.put(name, readValue(parser, parser.nextToken(), depth, childPath));
        }
        if (token != JsonToken.END_OBJECT) {
            throw new InvalidScoreRecordException("unexpected " + describe(token) + " at " + displayPath(path));
        }
        return map;
    }

    private static AttributeValue readValue(JsonParser parser, JsonToken token, int depth, String path)
            throws IOException {
        switch (token) {
            case START_OBJECT:
                return AttributeValue.fromM(readObject(parser, depth + 1, path));
            case START_ARRAY: {
                if (depth + 1 > MAX_DEPTH) {
                    throw new InvalidScoreRecordException("value nests deeper than DynamoDB's " + MAX_DEPTH
                        + " levels at " + displayPath(path));
                }
                List<AttributeValue> list = new ArrayList<>();
                JsonToken next;
                int index = 0;
                while ((next = parser.nextToken()) != JsonToken.END_ARRAY) {
                    list.add(readValue(parser, next, depth + 1, path + "[" + index++ + "]"));
                }
                return AttributeValue.fromL(list);
            }
            case VALUE_STRING:
                return AttributeValue.fromS(parser.getText());
            case VALUE_NUMBER_INT:
            case VALUE_NUMBER_FLOAT:
                return AttributeValue.fromN(checkNumber(parser.getText(), path));
            case VALUE_TRUE:
                return AttributeValue.fromBool(true);
            case VALUE_FALSE:
                return AttributeValue.fromBool(false);
            case VALUE_NULL:
                return AttributeValue.fromNul(true);
            default:
                throw new InvalidScoreRecordException("unexpected " + describe(token) + " at " + displayPath(path));
        }
    }

    /** Returns the number's JSON text unchanged once DynamoDB is known to accept it. */
    static String checkNumber(String text, String path) {
        BigDecimal value = new BigDecimal(text);
        if (value.signum() == 0) {
            return text;
        }
        BigDecimal stripped = value.stripTrailingZeros();
        if (stripped.precision() > MAX_NUMBER_DIGITS) {
            throw new InvalidScoreRecordException("number " + ItemKey.abbreviate(text) + " at "
                + displayPath(path) + " has " + stripped.precision() + " significant digits; DynamoDB keeps at most "
                + MAX_NUMBER_DIGITS);
        }
        // Exponent of the leading digit: 1.5E+3 -> 3, 0.002 -> -3.
        long exponent = (long) stripped.precision() - stripped.scale() - 1;
        if (exponent < MIN_NUMBER_EXPONENT || exponent > MAX_NUMBER_EXPONENT) {
            throw new InvalidScoreRecordException("number " + ItemKey.abbreviate(text) + " at " + displayPath(path)
                + " is outside DynamoDB's range (1E-130 to 9.99E+125 in magnitude)");
        }
        return text;
    }

    /** DynamoDB's item size, computed as its documentation describes (an upper bound for numbers). */
    static int itemSize(Map<String, AttributeValue> item) {
        long size = 0;
        for (Map.Entry<String, AttributeValue> e : item.entrySet()) {
            size += utf8Length(e.getKey()) + valueSize(e.getValue());
        }
        return (int) Math.min(size, Integer.MAX_VALUE);
    }

    private static long valueSize(AttributeValue value) {
        if (value.s() != null) {
            return utf8Length(value.s());
        }
        if (value.n() != null) {
            return value.n().length() / 2 + 2;
        }
        if (value.bool() != null || Boolean.TRUE.equals(value.nul())) {
            return 1;
        }
        if (value.hasL()) {
            long size = 3;
            for (AttributeValue v : value.l()) {
                size += 1 + valueSize(v);
            }
            return size;
        }
        if (value.hasM()) {
            long size = 3;
            for (Map.Entry<String, AttributeValue> e : value.m().entrySet()) {
                size += 1 + utf8Length(e.getKey()) + valueSize(e.getValue());
            }
            return size;
        }
        return 1;
    }

    private static long utf8Length(String s) {
        long n = 0;
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c < 0x80) {
                n += 1;
            } else if (c < 0x800) {
                n += 2;
            } else if (Character.isHighSurrogate(c)) {
                n += 4;
                i++;
            } else {
                n += 3;
            }
        }
        return n;
    }

    private static String describe(JsonToken token) {
        switch (token) {
            case START_ARRAY: return "an array";
            case START_OBJECT: return "an object";
            case VALUE_STRING: return "a string";
            case VALUE_NUMBER_INT: case VALUE_NUMBER_FLOAT: return "a number";
            case VALUE_TRUE: case VALUE_FALSE: return "a boolean";
            case VALUE_NULL: return "null";
            default: return token.toString();
        }
    }

    private static String displayPath(String path) {
        return path.isEmpty() ? "the top level" : "$" + path;
    }
}
