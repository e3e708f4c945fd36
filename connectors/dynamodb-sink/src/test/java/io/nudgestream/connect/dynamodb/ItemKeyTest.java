package io.nudgestream.connect.dynamodb;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class ItemKeyTest {

    @Test
    void splitsAtTheLastSeparator() {
        assertEquals(new ItemKey("c-1", "low-balance"), ItemKey.parse("c-1#low-balance", "#"));
        assertEquals(new ItemKey("org#c-1", "r"), ItemKey.parse("org#c-1#r", "#"));
        assertEquals(new ItemKey("c", "r"), ItemKey.parse("c::r", "::"));
        assertEquals("c-1#r", new ItemKey("c-1", "r").render("#"));
    }

    @Test
    void rejectsKeysWithoutBothParts() {
        for (String bad : new String[] {"c-1", "#r", "c-1#", "#", ""}) {
            var e = assertThrows(InvalidScoreRecordException.class, () -> ItemKey.parse(bad, "#"));
            assertTrue(e.getMessage().contains("is not <customer_id>#<rule_id>"), e.getMessage());
        }
        var e = assertThrows(InvalidScoreRecordException.class, () -> ItemKey.parse(null, "#"));
        assertTrue(e.getMessage().contains("record has no key"), e.getMessage());
    }
}
