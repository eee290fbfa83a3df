-- "Add to cart unless full": one more of `item`, unless that would make
-- more than `max` different items. Answers the item's new quantity; a full
-- cart is an error, and nothing is changed.
--   SESSION.PLUGIN <id> cart_add sku-42 10
sessiond.register("cart_add", function(s, item, max)
  max = tonumber(max) or 10
  local key = "cart." .. item
  local items = tonumber(s:get("cart.items")) or 0
  if s:get(key) == nil then
    if items >= max then
      return { err = "the cart is full (" .. max .. " different items)" }
    end
    s:set("cart.items", items + 1)
  end
  return s:incr(key)
end)
