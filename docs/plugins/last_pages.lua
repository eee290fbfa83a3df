-- The last `n` pages a session visited, newest first, kept in the variable
-- "pages" (one per line). Answers the list.
--   SESSION.PLUGIN <id> visit_page /checkout 5
sessiond.register("visit_page", function(s, page, n)
  n = tonumber(n) or 5
  local pages = { page }
  for p in string.gmatch(s:get("pages") or "", "[^\n]+") do
    if #pages >= n then
      break
    end
    pages[#pages + 1] = p
  end
  s:set("pages", table.concat(pages, "\n"))
  return pages
end)
